"""Config parsing: strictness, JSON paths in errors, durations, listen addresses."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.config.duration import parse_duration
from caddytw.config.errors import ConfigError
from caddytw.config.listen import parse_listen
from caddytw.config.model import parse_config
from caddytw.server.build import validate


def server(**fields):
    return {"apps": {"http": {"servers": {"s": {"listen": [":8080"], **fields}}}}}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("-1", -1e-9),
        ("0", 0.0),
        (10_000_000, 0.01),
        ("2h45m", 9900.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "10", "10x", "s", "1m30", True, None, [1]])
def test_bad_durations_name_the_path(bad):
    if bad == "10":
        assert parse_duration(bad, "a.b") == pytest.approx(1e-8)  # bare integers are ns
        return
    with pytest.raises(ConfigError) as info:
        parse_duration(bad, "a.b")
    assert info.value.path == "a.b"


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=59))
def test_duration_composition(minutes, seconds):
    assert parse_duration(f"{minutes}m{seconds}s", "p") == pytest.approx(minutes * 60 + seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":8080", [("", 8080)]),
        ("127.0.0.1:8080", [("127.0.0.1", 8080)]),
        ("[::1]:8080", [("::1", 8080)]),
        ("localhost:8080-8082", [("localhost", 8080), ("localhost", 8081), ("localhost", 8082)]),
        ("tcp/127.0.0.1:9000", [("127.0.0.1", 9000)]),
    ],
)
def test_listen_addresses(text, expected):
    assert [(a.host, a.port) for a in parse_listen(text, "l")] == expected


@pytest.mark.parametrize(
    "bad", ["8080", "127.0.0.1", ":x", ":9-8", ":70000", "[::1]8080", "foo/:80"]
)
def test_bad_listen(bad):
    with pytest.raises(ConfigError):
        parse_listen(bad, "apps.http.servers.s.listen[0]")


def test_unknown_fields_are_rejected_with_path():
    errors = validate(server(bogus=1))
    assert errors == ['apps.http.servers.s.bogus: unknown field "bogus"']


def test_every_error_is_reported():
    config = server(
        routes=[
            {"handle": [{"handler": "nope"}]},
            {"match": [{"path": "/x"}], "handle": [{"handler": "static_response", "wat": 1}]},
        ],
        read_timeout="forever",
    )
    errors = validate(config)
    text = "\n".join(errors)
    assert "apps.http.servers.s.read_timeout" in text
    assert "apps.http.servers.s.routes[0].handle[0].handler: unknown handler module 'nope'" in text
    assert "apps.http.servers.s.routes[1].match[0].path: expected an array" in text
    assert 'apps.http.servers.s.routes[1].handle[0].wat: unknown field "wat"' in text


def test_at_id_is_accepted_everywhere():
    config = server(
        routes=[
            {
                "@id": "r",
                "match": [{"@id": "m", "path": ["/"]}],
                "handle": [{"@id": "h", "handler": "static_response", "body": "x"}],
            }
        ]
    )
    config["apps"]["http"]["servers"]["s"]["@id"] = "srv"
    assert validate(config) == []


def test_keys_of_other_parts_are_carried():
    config = server(
        protocols=["h1", "h2", "h3"],
        tls_connection_policies=[{}],
        automatic_https={"disable": True},
        idle_timeout="5m",
        read_header_timeout="10s",
        max_header_bytes=4096,
        logs={},
    )
    config["apps"]["tls"] = {"certificates": {"load_files": []}}
    config["admin"] = {"listen": "localhost:2019"}
    config["logging"] = {"logs": {"default": {"level": "INFO"}}}
    parsed = parse_config(config)
    srv = parsed.http.servers[0]
    assert srv.protocols == ("h1", "h2", "h3")
    assert srv.idle_timeout == 300
    assert srv.max_header_bytes == 4096
    assert parsed.tls == {"certificates": {"load_files": []}}
    assert srv.automatic_https == {"disable": True}


def test_unknown_protocol_and_app():
    config = server(protocols=["h4"])
    config["apps"]["pki"] = {}
    config["apps"]["bogus"] = {}
    errors = validate(config)
    assert any("apps.http.servers.s.protocols[0]" in e for e in errors)
    assert any("apps.bogus: unknown app module" in e for e in errors)
    # Caddy's own modules caddytw lacks are named as such, not called unknown.
    assert any("apps.pki: the pki app (acme_server" in e and "not supported" in e for e in errors)


def test_duplicate_listener_is_an_error():
    config = {
        "apps": {
            "http": {
                "servers": {
                    "a": {"listen": ["127.0.0.1:9999"]},
                    "b": {"listen": ["127.0.0.1:9999"]},
                }
            }
        }
    }
    assert any("already used" in e for e in validate(config))


def test_seed_short_matcher_form():
    config = server(routes=[{"match": [{"matcher": "path", "paths": ["/api/*"]}], "handle": []}])
    assert validate(config) == []


def test_empty_config_is_valid():
    assert validate({}) == []


def test_caddy_tls_features_caddytw_lacks_are_named():
    """The tailscale certificate manager and DNS providers other than rfc2136 are
    Caddy's, so not "unknown": say they are unsupported, naming the module."""
    dns = {"dns": {"provider": {"name": "cloudflare", "api_token": "t"}}}
    for policy, path, what in (
        ({"get_certificate": [{"via": "tailscale"}]}, "get_certificate[0].via", "tailscale"),
        (
            {"issuers": [{"module": "acme", "challenges": dns}]},
            "issuers[0].challenges.dns.provider.name",
            "dns.providers.cloudflare",
        ),
    ):
        config = server()
        config["apps"]["tls"] = {"automation": {"policies": [policy]}}
        errors = validate(config)
        where = "apps.tls.automation.policies[0]." + path
        assert any(where in e and what in e and "not supported by caddytw" in e for e in errors), (
            errors
        )


def test_caddy_tls_features_caddytw_runs_validate():
    """ZeroSSL, EAB, get_certificate, on-demand, ed25519, automate, client auth, rfc2136."""
    config = server(tls_connection_policies=[{"client_authentication": {"mode": "request"}}])
    eab = {"key_id": "k", "mac_key": "c2VjcmV0"}
    rfc2136 = {"name": "rfc2136", "server": "127.0.0.1:53", "key_name": "k.", "key": "c2VjcmV0"}
    config["apps"]["tls"] = {
        "certificates": {"automate": ["a.example"]},
        "automation": {
            "on_demand": {"ask": "http://127.0.0.1:9/ask", "rate_limit": {"interval": "1m"}},
            "policies": [
                {"subjects": ["a.example"], "issuers": [{"module": "zerossl", "api_key": "x"}]},
                {
                    "subjects": ["b.example"],
                    "key_type": "ed25519",
                    "issuers": [
                        {
                            "module": "acme",
                            "external_account": eab,
                            "challenges": {"dns": {"provider": rfc2136}},
                        }
                    ],
                },
                {
                    "subjects": ["c.example"],
                    "get_certificate": [{"via": "http", "url": "http://x"}],
                },
                {"on_demand": True},
            ],
        },
    }
    assert validate(config) == []
