"""``dynamic_upstreams`` (``a``, ``srv``, ``multi``) against a real DNS server process
on 127.0.0.1 (tests/support/dnsserver.py) named by Caddy's ``resolver`` option."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.proxy.harness import Client, upstreams
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config

DNS_SERVER = Path(__file__).resolve().parents[1] / "support" / "dnsserver.py"


@contextmanager
def dns_server(zone: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(DNS_SERVER), str(port), str(zone)])
    try:
        time.sleep(0.2)
        from twisted.names import dns  # a real query until it answers

        for _ in range(100):
            if process.poll() is not None:
                pytest.fail("DNS server exited")
            if _answers(port, dns):
                break
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(port: int, dns: Any) -> bool:
    import socket

    query = dns.Message(id=1, recDes=1)
    query.queries = [dns.Query(b"app.test", dns.A, dns.IN)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(query.toStr(), ("127.0.0.1", port))
        try:
            sock.recv(512)
        except OSError:
            return False
    return True


def route(prefix: str, handler: dict[str, Any]) -> dict[str, Any]:
    return {
        "match": [{"path": [prefix + "*"]}],
        "handle": [{"handler": "reverse_proxy", **handler}],
    }


def test_a_srv_multi_from_a_real_dns_server(tmp_path: Path) -> None:
    with upstreams("a", "b") as (a, b):
        zone = tmp_path / "zone.json"

        def write_zone(srv_port: int) -> None:
            records = {
                "A": {"app.test": ["127.0.0.1"]},
                "SRV": {"_api._tcp.app.test": [[10, 5, srv_port, "127.0.0.1"]]},
            }
            zone.write_text(json.dumps(records))

        write_zone(a.port)
        with dns_server(zone) as dns_port:
            resolver = {"addresses": [f"127.0.0.1:{dns_port}"]}
            a_source = {
                "source": "a",
                "name": "app.test",
                "port": str(a.port),
                "resolver": resolver,
            }
            srv_source = {
                "source": "srv",
                "service": "api",
                "proto": "tcp",
                "name": "{http.request.header.X-Zone}",
                "refresh": "200ms",
                "resolver": resolver,
            }
            routes = [
                route("/a/", {"dynamic_upstreams": a_source}),
                route("/srv/", {"dynamic_upstreams": srv_source}),
                route(
                    "/multi/",
                    {
                        "dynamic_upstreams": {
                            "source": "multi",
                            "sources": [
                                {**a_source, "port": str(b.port)},
                                {**srv_source, "refresh": "1m"},
                            ],
                        },
                        "load_balancing": {"selection_policy": {"policy": "round_robin"}},
                    },
                ),
                route(
                    "/fallback/",
                    {
                        "dynamic_upstreams": {**a_source, "name": "missing.test"},
                        "upstreams": [{"dial": b.dial}],
                    },
                ),
                route("/none/", {"dynamic_upstreams": {**a_source, "name": "missing.test"}}),
            ]
            port = free_port()
            with running_server(simple_config(port, routes), tmp_path, [port]) as server:
                client = Client(port)
                assert client.request("GET", "/a/x").upstream == "a"
                assert client.request("GET", "/srv/x", X_Zone="app.test").upstream == "a"
                seen = {
                    client.request("GET", "/multi/x", X_Zone="app.test").upstream for _ in range(4)
                }
                assert seen == {"a", "b"}
                assert client.request("GET", "/fallback/x").upstream == "b"
                assert client.request("GET", "/none/x").status == 503
                # The SRV answer changes: after its refresh the new port is used.
                write_zone(b.port)
                for _ in range(100):
                    if client.request("GET", "/srv/x", X_Zone="app.test").upstream == "b":
                        break
                    time.sleep(0.1)
                else:
                    pytest.fail("the changed SRV record was never used")
                client.close()
                log = server.log()
            assert "failed getting dynamic upstreams" in log
            assert "Traceback" not in log


def test_lookup_srv_becomes_an_srv_source() -> None:
    """Caddy 2.6's deprecated ``lookup_srv`` (the Caddyfile's ``srv+`` upstreams)."""
    from caddytw.config.errors import ConfigError
    from caddytw.config.reader import ObjectReader
    from caddytw.handlers.reverse_proxy.config import parse_proxy_config
    from caddytw.handlers.reverse_proxy.dynamic import (
        MultiSource,
        SRVSource,
        lookup_srv_source,
    )

    def upstreams(*items: dict[str, str]) -> Any:
        return parse_proxy_config(ObjectReader({"upstreams": list(items)}, "h")).upstreams

    one = lookup_srv_source(upstreams({"lookup_srv": "_api._tcp.example.com"}), None)
    assert isinstance(one, SRVSource) and one.name.source == "_api._tcp.example.com"
    two = lookup_srv_source(upstreams({"lookup_srv": "a"}, {"lookup_srv": "b"}), None)
    assert isinstance(two, MultiSource) and len(two.sources) == 2
    assert lookup_srv_source(upstreams({"dial": "x:1"}), None) is None
    with pytest.raises(ConfigError, match="incompatible with lookup_srv"):
        upstreams({"lookup_srv": "a", "dial": "x:1"})


@pytest.mark.parametrize(
    ("source", "path", "words"),
    [
        ({"source": "a", "name": "x", "bogus": 1}, "dynamic_upstreams.bogus", "unknown field"),
        (
            {"source": "srv", "name": "x", "resolver": {"addresses": ["nope:port"]}},
            "dynamic_upstreams.resolver.addresses[0]",
            "invalid resolver address",
        ),
        ({"source": "consul"}, "dynamic_upstreams.source", "caddytw has a, srv and multi"),
        ({"source": "a"}, "dynamic_upstreams.name", "name to look up"),
        (
            {"source": "multi", "sources": [{"source": "srv", "name": "x", "proto": "tcp"}]},
            "dynamic_upstreams.sources[0]",
            "service and proto go together",
        ),
    ],
)
def test_bad_sources_name_their_json_path(source: Any, path: str, words: str) -> None:
    from caddytw.server.build import validate

    handler = {"handler": "reverse_proxy", "dynamic_upstreams": source}
    route = {"handle": [handler]}
    config = {"apps": {"http": {"servers": {"s": {"listen": [":0"], "routes": [route]}}}}}
    (problem,) = validate(config)
    assert problem.startswith(f"apps.http.servers.s.routes[0].handle[0].{path}: "), problem
    assert words in problem
