"""Pure parts of the proxy in memory: headers, header ops, config, health decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.handlers.reverse_proxy.config import (
    ActiveHealthConfig,
    PassiveHealthConfig,
    parse_proxy_config,
    status_matches,
)
from caddytw.handlers.reverse_proxy.headers import (
    forward_fields,
    merge_response_headers,
    strip_hop_by_hop,
    upgrade_type,
)
from caddytw.handlers.reverse_proxy.health import (
    ActiveHealthChecker,
    PassiveHealth,
    ProbeResult,
    Streak,
    probe_healthy,
    record_probe,
)
from caddytw.handlers.reverse_proxy.upstreams import HostRegistry, Upstream, upstreams_view


def headers(**fields: str) -> Headers:
    h = Headers()
    for name, value in fields.items():
        h.addRawHeader(name.replace("_", "-").encode(), value.encode())
    return h


def test_hop_by_hop_and_connection_listed_fields_are_stripped():
    h = headers(
        Connection="close, X-Private",
        X_Private="1",
        Keep_Alive="1",
        Proxy_Authorization="x",
        Transfer_Encoding="chunked",
        Upgrade="h2c",
        TE="trailers, deflate",
        Accept="*/*",
    )
    strip_hop_by_hop(h, keep_te_trailers=True)
    assert dict(h.getAllRawHeaders()) == {b"Accept": [b"*/*"], b"TE": [b"trailers"]}
    h = headers(TE="deflate")
    strip_hop_by_hop(h, keep_te_trailers=True)
    assert not h.hasHeader(b"te")


def test_upgrade_type_needs_the_connection_token():
    assert upgrade_type(headers(Connection="keep-alive, Upgrade", Upgrade="WebSocket")) == (
        b"websocket"
    )
    assert upgrade_type(headers(Upgrade="websocket")) is None


@pytest.mark.parametrize(
    ("trusted", "sent", "expected"),
    [
        (False, {}, ("10.0.0.1", "http", "h.test")),
        (
            False,
            {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"},
            ("10.0.0.1", "http", "h.test"),
        ),
        (
            True,
            {
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "orig.test",
            },
            ("6.6.6.6, 10.0.0.1", "https", "orig.test"),
        ),
        (True, {}, ("10.0.0.1", "http", "h.test")),
    ],
)
def test_forwarded_headers(trusted, sent, expected):
    sent_headers = Headers({b"Host": [b"h.test"]})
    for name, value in sent.items():
        sent_headers.addRawHeader(name.encode(), value.encode())
    h = Headers()
    h._rawHeaders = forward_fields(
        sent_headers._rawHeaders, peer=b"10.0.0.1", scheme=b"http", trusted=trusted
    )
    got = tuple(
        h.getRawHeaders(n)[0].decode()
        for n in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
    )
    assert got == expected


def test_response_merge_keeps_our_server_first_and_takes_the_upstream_date():
    ours = headers(Server="Caddy", Date="ours")
    merge_response_headers(ours, headers(Server="nginx", Date="theirs", X_A="1"))
    assert ours.getRawHeaders(b"server") == [b"Caddy", b"nginx"]
    assert ours.getRawHeaders(b"date") == [b"theirs"]


def config(**data):
    return parse_proxy_config(ObjectReader({"upstreams": [{"dial": "127.0.0.1:1"}], **data}, "h"))


def test_config_defaults():
    parsed = config()
    assert parsed.transport.dial_timeout == 3.0
    assert parsed.transport.keepalive.max_idle_conns_per_host == 32
    assert parsed.load_balancing.retries == 0
    assert parsed.active_health is None and parsed.passive_health is None
    lb = config(load_balancing={"try_duration": "5s"}).load_balancing
    assert lb.try_interval == 0.25


def test_config_full():
    parsed = config(
        transport={
            "protocol": "http",
            "dial_timeout": "1s",
            "response_header_timeout": "2s",
            "read_timeout": "3s",
            "write_timeout": "4s",
            "keep_alive": {"enabled": False, "idle_timeout": "1m"},
            "tls": {"server_name": "x.test", "insecure_skip_verify": True},
        },
        load_balancing={
            "selection_policy": {"policy": "round_robin"},
            "retries": 2,
            "try_duration": "1s",
            "try_interval": "100ms",
            "retry_match": [{"method": ["POST"]}],
        },
        health_checks={
            "active": {
                "uri": "/h",
                "interval": "200ms",
                "expect_status": 2,
                "expect_body": "o+k",
                "headers": {"X": ["y"]},
                "passes": 2,
                "fails": 3,
            },
            "passive": {
                "fail_duration": "10s",
                "max_fails": 2,
                "unhealthy_status": [5],
                "unhealthy_latency": "1s",
                "unhealthy_request_count": 9,
            },
        },
        headers={"request": {"set": {"A": ["b"]}}, "response": {"delete": ["Server"]}},
        flush_interval=-1,
        trusted_proxies=["10.0.0.0/8"],
    )
    assert parsed.transport.tls.server_name == "x.test"
    assert parsed.transport.keepalive.enabled is False
    assert parsed.load_balancing.retries == 2 and len(parsed.load_balancing.retry_match) == 1
    assert parsed.active_health.passes == 2 and parsed.active_health.fails == 3
    assert parsed.passive_health.unhealthy_status == (5,)
    assert parsed.flush_interval < 0


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"upstreams": []}, "h.upstreams"),
        ({"upstreams": [{"dial": "http://x:1"}]}, "h.upstreams[0].dial"),
        ({"upstreams": [{"dial": "x"}]}, "h.upstreams[0].dial"),
        ({"upstreams": [{"dial": "x:1", "weight": 2}]}, "h.upstreams[0].weight"),
        ({"transport": {"protocol": "scgi"}}, "h.transport.protocol"),
        ({"transport": {"protocol": "fastcgi", "env": {"A": 1}}}, "h.transport.env.A"),
        ({"transport": {"protocol": "fastcgi", "keep_alive": {}}}, "h.transport.keep_alive"),
        ({"transport": {"protocol": "fastcgi", "split_path": "x"}}, "h.transport.split_path"),
        ({"upstreams": [{"dial": "unix+h2c/"}]}, "h.upstreams[0].dial"),
        (
            {"upstreams": [{"dial": "unix//s"}], "health_checks": {"active": {}}},
            "h.health_checks.active",
        ),
        ({"transport": {"protocol": "http", "versions": ["3"]}}, "h.transport.versions[0]"),
        ({"transport": {"protocol": "http", "tls": {"bogus": 1}}}, "h.transport.tls.bogus"),
        ({"transport": {"protocol": "http", "dial_timeout": "soon"}}, "h.transport.dial_timeout"),
        ({"load_balancing": {"retries": -1}}, "h.load_balancing.retries"),
        ({"health_checks": {"active": {"expect_body": "("}}}, "h.health_checks.active.expect_body"),
        (
            {"health_checks": {"passive": {"unhealthy_status": [42]}}},
            "h.health_checks.passive.unhealthy_status[0]",
        ),
        ({"health_checks": {"other": {}}}, "h.health_checks.other"),
        ({"headers": {"request": {"sett": {}}}}, "h.headers.request.sett"),
        ({"circuit_breaker": {}}, "h.circuit_breaker"),
        ({"trusted_proxies": ["nope"]}, "h.trusted_proxies[0]"),
        ({"bogus": True}, "h.bogus"),
    ],
)
def test_config_errors_name_the_json_path(data, path):
    data = {"upstreams": [{"dial": "127.0.0.1:1"}], **data}
    with pytest.raises(ConfigError) as error:
        parse_proxy_config(ObjectReader(data, "h"))
    assert error.value.path == path


def test_status_matches_class_digits():
    assert status_matches(204, 2) and not status_matches(302, 2)
    assert status_matches(503, 503) and not status_matches(500, 503)


@pytest.mark.parametrize(
    ("result", "cfg", "healthy"),
    [
        (ProbeResult(200), ActiveHealthConfig(), True),
        (ProbeResult(302), ActiveHealthConfig(), True),
        (ProbeResult(404), ActiveHealthConfig(), False),
        (ProbeResult(error="refused"), ActiveHealthConfig(), False),
        (ProbeResult(204), ActiveHealthConfig(expect_status=2), True),
        (ProbeResult(200), ActiveHealthConfig(expect_status=204), False),
    ],
)
def test_probe_judgement(result, cfg, healthy):
    assert probe_healthy(result, cfg) is healthy


def test_probe_body_regex():
    import re

    cfg = ActiveHealthConfig(expect_body=re.compile("^ok"))
    assert probe_healthy(ProbeResult(200, b"ok fine"), cfg)
    assert not probe_healthy(ProbeResult(200, b"not ok"), cfg)


def test_passes_and_fails_thresholds():
    cfg = ActiveHealthConfig(passes=2, fails=3)
    streak, state = Streak(), True
    seen = []
    for _ in range(3):  # the third consecutive failure flips it
        state = record_probe(streak, False, state, cfg)
        seen.append(state)
    assert seen == [True, True, False]
    state = record_probe(streak, True, state, cfg)
    assert state is False  # one pass is not enough
    state = record_probe(streak, False, state, cfg)
    state = record_probe(streak, True, state, cfg)
    assert state is False
    assert record_probe(streak, True, state, cfg) is True


def upstream(registry, dial="127.0.0.1:9", max_fails=None, max_requests=0):
    return Upstream(dial, "127.0.0.1", 9, registry.acquire(dial), max_requests, max_fails)


def test_active_checker_runs_on_the_injected_clock():
    clock = Clock()
    registry = HostRegistry()
    target = upstream(registry)
    answers = [ProbeResult(500), ProbeResult(500), ProbeResult(200)]
    calls = []

    def probe(u) -> Deferred:
        calls.append(clock.seconds())
        return succeed(answers.pop(0))

    checker = ActiveHealthChecker([target], ActiveHealthConfig(interval=5, fails=2), probe, clock)
    checker.startService()
    clock.advance(0)
    assert target.available()  # one failure of two
    clock.advance(5)
    assert not target.available()
    clock.advance(5)
    assert target.available()
    assert calls == [0, 5, 10]
    checker.stopService()
    clock.advance(60)
    assert len(calls) == 3


def test_passive_health_counts_and_forgets():
    clock = Clock()
    registry = HostRegistry()
    target = upstream(registry, max_fails=2)
    passive = PassiveHealth(
        PassiveHealthConfig(
            fail_duration=10, max_fails=2, unhealthy_status=(5,), unhealthy_latency=1.0
        ),
        clock,
    )
    passive.judge_response(target, 200, 0.1)
    assert target.state.fails == 0
    passive.judge_response(target, 503, 0.1)
    clock.advance(5)
    passive.judge_response(target, 200, 2.0)  # too slow
    assert target.state.fails == 2 and not target.available()
    clock.advance(5)
    assert target.state.fails == 1 and target.available()
    passive.count_failure(target)
    passive.forget_all()
    assert target.state.fails == 0


def test_upstream_limits_and_admin_view():
    registry = HostRegistry()
    a = upstream(registry, "10.0.0.1:80", max_requests=1)
    b = upstream(registry, "10.0.0.1:80")  # another handler, same address: same state
    assert a.state is b.state
    a.state.num_requests = 1
    assert a.full() and not a.available() and b.available()
    assert upstreams_view(registry) == [{"address": "10.0.0.1:80", "num_requests": 1, "fails": 0}]
    a.state.num_requests = 0
    registry.release("10.0.0.1:80")
    registry.release("10.0.0.1:80")
    assert upstreams_view(registry) == []


def test_package_exports_and_plugin():
    import caddytw.handlers.reverse_proxy as package
    from caddytw.handlers.registry import handler_factories

    for name in package.__all__:
        assert hasattr(package, name)
    factory = handler_factories()["reverse_proxy"]
    assert factory.module == "caddytw.handlers.reverse_proxy.handler"


def test_build_registers_upstreams_and_a_service_in_the_context():
    from caddytw.handlers.reverse_proxy import registry_of, upstreams_view
    from caddytw.handlers.reverse_proxy.handler import build
    from caddytw.http.build import BuildContext

    context = BuildContext(reactor=Clock())
    data = {"upstreams": [{"dial": "127.0.0.1:7001"}, {"dial": "127.0.0.1:7002"}]}
    build(ObjectReader(data, "h"), context, None)
    build(ObjectReader(data, "h2"), context, None)  # same addresses: same shared state
    assert upstreams_view(registry_of(context.shared)) == [
        {"address": "127.0.0.1:7001", "num_requests": 0, "fails": 0},
        {"address": "127.0.0.1:7002", "num_requests": 0, "fails": 0},
    ]
    for service in context.services:
        service.startService()
        service.stopService()
    assert upstreams_view(registry_of(context.shared)) == []


def test_config_errors_carry_the_full_json_path():
    from caddytw.server.build import validate

    handler = {"handler": "reverse_proxy", "upstreams": [{"dial": "nope"}]}
    config = {
        "apps": {"http": {"servers": {"s": {"listen": [":0"], "routes": [{"handle": [handler]}]}}}}
    }
    problems = validate(config, Clock())
    assert problems == [
        "apps.http.servers.s.routes[0].handle[0].upstreams[0].dial: "
        "invalid upstream dial address 'nope' (want host:port)"
    ]


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        (
            "handle_response",
            [{"match": {"status_code": ["x"]}}],
            "handle_response[0].match.status_code[0]",
        ),
        (
            "handle_response",
            [{"routes": [{"handle": [{"handler": "nope"}]}]}],
            "routes[0].handle[0]",
        ),
        ("handle_response", [{"bogus": 1}], "handle_response[0].bogus"),
        ("rewrite", {"uri_substring": "x"}, "rewrite.uri_substring"),
    ],
)
def test_handle_response_and_rewrite_errors_name_the_json_path(field, value, path):
    from caddytw.server.build import validate

    handler = {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:1"}], field: value}
    config = {
        "apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [{"handle": [handler]}]}}}}
    }
    problems = validate(config)
    assert any(path in p for p in problems), problems


def test_copy_response_outside_handle_response_is_a_500_not_a_traceback():
    from caddytw.handlers.reverse_proxy.handle_response import pending_of
    from caddytw.http.errors import HandlerError

    with pytest.raises(HandlerError) as error:
        pending_of(object(), "copy_response")  # type: ignore[arg-type]
    assert error.value.status == 500


def test_a_dial_without_host_is_the_local_system():
    from caddytw.handlers.reverse_proxy.config import parse_dial

    assert parse_dial(":9091", "d") == ("localhost", 9091)
    with pytest.raises(ConfigError):
        parse_dial(":0", "d")


@settings(max_examples=80)
@given(
    st.booleans(),
    st.integers(0, 5),
    st.integers(0, 5),
    st.none() | st.integers(0, 5),
    st.integers(0, 5),
)
def test_upstream_available_is_healthy_and_not_full(
    active_healthy, fails, num_requests, max_fails, max_requests
):
    registry = HostRegistry()
    state = registry.acquire("a:1")
    state.active_healthy, state.fails, state.num_requests = active_healthy, fails, num_requests
    upstream = Upstream("a:1", "a", 1, state, max_requests=max_requests, max_fails=max_fails)
    assert upstream.available() == (upstream.healthy() and not upstream.full())
