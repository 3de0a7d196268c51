"""Automatic HTTPS planning (pure): which servers get TLS, which names, which redirects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.config.errors import ConfigErrors
from caddytw.config.model import parse_config
from caddytw.tls.automation import (
    REDIRECT_SERVER,
    plan_automatic_https,
    subject_is_internal,
    subject_qualifies,
)
from tests.tls.pki import TestCA


def hosts_route(*hosts: str) -> dict[str, Any]:
    return {"match": [{"host": list(hosts)}], "handle": [{"handler": "static_response"}]}


def config(servers: dict[str, Any], tls: dict[str, Any] | None = None, **http: Any) -> Any:
    data = {"apps": {"http": {"http_port": 8080, "https_port": 8443, "servers": servers, **http}}}
    if tls:
        data["apps"]["tls"] = tls
    return parse_config(data)


def test_https_server_gets_tls_names_and_redirect_server():
    plan = plan_automatic_https(
        config(
            {
                "site": {
                    "listen": ["127.0.0.1:8443"],
                    "routes": [
                        hosts_route("example.com", "*.example.net"),
                        hosts_route("localhost"),
                    ],
                }
            }
        )
    )
    assert plan.is_tls("site")
    assert set(plan.managed) == {"example.com", "*.example.net", "localhost"}
    assert plan.managed["example.com"].issuers[0].module == "acme"
    assert plan.managed["localhost"].issuers[0].module == "internal"
    servers = {s.name: s for s in plan.config.http.servers}
    redirect = servers[REDIRECT_SERVER]
    assert [a.display for a in redirect.listen] == ["127.0.0.1:8080"]
    locations = [r["handle"][0]["headers"]["Location"][0] for r in redirect.routes]
    assert set(locations) == {"https://{http.request.host}:8443{http.request.uri}"}
    assert [r["match"] for r in redirect.routes] == [
        [{"host": ["example.com"]}],
        [{"host": ["*.example.net"]}],
        [{"host": ["localhost"]}],
        [{"protocol": "http"}],
    ]
    assert redirect.routes[0]["handle"][0]["status_code"] == 308
    assert servers["site"].tls_connection_policies == [{}]
    assert not plan.is_tls(REDIRECT_SERVER)


def test_plan_is_idempotent():
    first = plan_automatic_https(
        config(
            {
                "site": {"listen": [":8443"], "routes": [hosts_route("a.test")]},
                "plain": {"listen": [":8080"], "routes": [hosts_route("b.test"), {"handle": []}]},
            }
        )
    )
    again = plan_automatic_https(first.config)
    assert again.config == first.config
    assert again.managed == first.managed and again.tls_servers == first.tls_servers


def test_redirects_join_an_existing_http_server_after_its_host_routes():
    plan = plan_automatic_https(
        config(
            {
                "site": {"listen": [":8443"], "routes": [hosts_route("a.test")]},
                "plain": {"listen": [":8080"], "routes": [hosts_route("b.test")]},
            }
        )
    )
    servers = {s.name: s for s in plan.config.http.servers}
    assert REDIRECT_SERVER not in servers
    routes = servers["plain"].routes
    assert routes[0] == hosts_route("b.test")
    assert routes[1]["match"] == [{"host": ["a.test"]}]
    assert routes[2]["match"] == [{"protocol": "http"}]
    assert not plan.is_tls("plain")


def test_disable_skip_and_disable_redirects():
    plan = plan_automatic_https(
        config(
            {
                "off": {
                    "listen": [":9443"],
                    "routes": [hosts_route("off.test")],
                    "automatic_https": {"disable": True},
                },
                "quiet": {
                    "listen": [":8443"],
                    "routes": [hosts_route("a.test", "skipped.test", "nocert.test")],
                    "automatic_https": {
                        "disable_redirects": True,
                        "skip": ["skipped.test"],
                        "skip_certificates": ["nocert.test"],
                    },
                },
            }
        )
    )
    assert not plan.is_tls("off")
    assert plan.is_tls("quiet")
    assert set(plan.managed) == {"a.test"}
    assert [s.name for s in plan.config.http.servers] == ["off", "quiet"]


def test_server_on_other_port_with_hosts_gets_tls_but_not_without():
    plan = plan_automatic_https(
        config(
            {
                "named": {"listen": [":9000"], "routes": [hosts_route("a.test")]},
                "anon": {"listen": [":9001"], "routes": [{"handle": []}]},
                "policies": {"listen": [":9002"], "tls_connection_policies": []},
            }
        )
    )
    assert plan.is_tls("named") and not plan.is_tls("anon") and plan.is_tls("policies")
    redirect = next(s for s in plan.config.http.servers if s.name == REDIRECT_SERVER)
    locations = {r["handle"][0]["headers"]["Location"][0] for r in redirect.routes}
    # Each name redirects to the port it is served on; the catch-all to https_port.
    assert locations == {
        "https://{http.request.host}:9000{http.request.uri}",
        "https://{http.request.host}:9002{http.request.uri}",
        "https://{http.request.host}:8443{http.request.uri}",
    }


def test_loaded_certificate_covers_a_name(tmp_path: Path):
    cert, key, _ = TestCA().write_leaf(tmp_path, "a", ["a.test"])
    tls = {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}}
    servers = {"site": {"listen": [":8443"], "routes": [hosts_route("a.test", "b.test")]}}
    plan = plan_automatic_https(config(servers, tls))
    assert set(plan.managed) == {"b.test"}
    assert plan.loaded[0].names == ("a.test",)


def test_policies_choose_issuers():
    tls = {
        "automation": {
            "policies": [
                {"subjects": ["localhost"], "issuers": [{"module": "acme", "ca": "https://x/dir"}]},
                {"issuers": [{"module": "internal"}]},
            ]
        }
    }
    servers = {"site": {"listen": [":8443"], "routes": [hosts_route("localhost", "a.test")]}}
    plan = plan_automatic_https(config(servers, tls))
    assert plan.managed["localhost"].issuers[0].ca == "https://x/dir"
    assert plan.managed["a.test"].issuers[0].module == "internal"


def test_errors_are_collected_with_paths(tmp_path: Path):
    data = config(
        {
            "site": {
                "listen": [":8443"],
                "tls_connection_policies": [{"protocol_min": "ssl3"}],
                "automatic_https": {"bogus": True},
            }
        },
        {"certificates": {"load_files": [{"certificate": str(tmp_path / "no"), "key": "k"}]}},
    )
    with pytest.raises(ConfigErrors) as errors:
        plan_automatic_https(data)
    paths = sorted(e.path for e in errors.value)
    assert paths == [
        "apps.http.servers.site.automatic_https.bogus",
        "apps.http.servers.site.tls_connection_policies[0].protocol_min",
        "apps.tls.certificates.load_files[0]",
    ]


@pytest.mark.parametrize(
    ("name", "internal"),
    [
        ("localhost", True),
        ("a.localhost", True),
        ("x.local", True),
        ("10.0.0.1", True),
        ("::1", True),
        ("example.com", False),
        ("home.arpa.com", False),
    ],
)
def test_internal_names(name, internal):
    assert subject_is_internal(name) is internal


@given(st.from_regex(r"[a-z0-9*.{} -]{0,20}", fullmatch=True))
def test_qualifying_subjects(name):
    ok = subject_qualifies(name)
    if ok:
        assert name and not name.startswith(".") and not name.endswith(".")
        assert " " not in name and "{" not in name
        assert "*" not in name or (name.startswith("*.") and name.count("*") == 1)
    for good in ("a.b", "*.a.b", "localhost", "127.0.0.1"):
        assert subject_qualifies(good)
