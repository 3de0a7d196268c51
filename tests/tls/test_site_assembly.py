"""A config is planned once and its sites come out of the build complete: the HTTP-01
gate is in front of a plain server's routes from the start, a TLS server has none, and
the TLS runtime runs the very plan the build made. In memory: a real LiveConfig, real
sites and real HTTP/1.1 connections over StringTransport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from caddytw.http.site import ServerRoot
from caddytw.server.reload import LiveConfig
from caddytw.tls.challenges import HTTP01Gate

ROUTES = [{"handle": [{"handler": "static_response", "body": "routes"}]}]


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "storage": {"module": "file_system", "root": str(tmp_path / "storage")},
        "apps": {
            "http": {
                "servers": {
                    "plain": {"listen": ["127.0.0.1:8080"], "routes": ROUTES},
                    "secure": {
                        "listen": ["127.0.0.1:8443"],
                        "routes": ROUTES,
                        "tls_connection_policies": [{}],
                    },
                }
            }
        },
    }


def get(site: Any, target: str) -> bytes:
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(f"GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
    site.reactor.advance(0)
    return bytes(transport.value())


def test_plain_site_is_built_behind_the_gate(tmp_path: Path) -> None:
    live = LiveConfig(MemoryReactorClock(), MultiService())
    live.load(config(tmp_path))
    sites = {built.config.name: built.site for built in live.servers}
    gate = sites["plain"].resource
    assert isinstance(gate, HTTP01Gate) and gate.registry is live.challenges
    assert isinstance(sites["secure"].resource, ServerRoot)
    live.challenges.add_http01("tok", "tok.thumbprint")
    answer = get(sites["plain"], "/.well-known/acme-challenge/tok")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\ntok.thumbprint")
    assert get(sites["plain"], "/other").endswith(b"routes")


def test_tls_runs_the_plan_of_the_build(tmp_path: Path) -> None:
    live = LiveConfig(MemoryReactorClock(), MultiService())
    live.load(config(tmp_path))
    assert live.tls is not None
    assert live.tls.plan.config is live.config  # the build's plan, not a second one
    assert live.tls.is_tls("secure") and not live.tls.is_tls("plain")
    assert live.tls.challenges is live.challenges
    first = live.tls
    live.load(config(tmp_path))  # same TLS settings: the same runtime goes on
    assert live.tls is first
