"""Upstream dial addresses with placeholders, filled in per request as Caddy's
``fillDialInfo`` does: ``{http.regexp.*}`` from a matcher, a request header, and the
``{upstream}`` that a ``map`` handler sets (Caddy's own adapt corpus has all three)."""

from __future__ import annotations

from pathlib import Path

from tests.proxy.harness import Client, upstreams
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config


def test_dial_filled_in_per_request(tmp_path: Path) -> None:
    with upstreams("a", "b") as (a, b):
        port = free_port()
        routes = [
            {
                "match": [{"path_regexp": {"name": "to", "pattern": "^/port/([0-9]+)"}}],
                "handle": [
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": "127.0.0.1:{http.regexp.to.1}"}],
                    }
                ],
            },
            {
                "match": [{"path": ["/mapped/*"]}],
                "handle": [
                    {
                        "handler": "map",
                        "source": "{http.request.header.X-Site}",
                        "destinations": ["{upstream}"],
                        "mappings": [{"input": "b", "outputs": [b.dial]}],
                        "defaults": [a.dial],
                    },
                    {"handler": "reverse_proxy", "upstreams": [{"dial": "{upstream}"}]},
                ],
            },
            {
                "handle": [
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": "127.0.0.1:{http.request.header.X-Port}"}],
                    }
                ]
            },
        ]
        config = simple_config(port, routes)
        with running_server(config, tmp_path, [port]):
            client = Client(port)
            assert client.request("GET", f"/port/{a.port}/x").upstream == "a"
            assert client.request("GET", f"/port/{b.port}/x").upstream == "b"
            assert client.request("GET", "/mapped/1", X_Site="b").upstream == "b"
            assert client.request("GET", "/mapped/1", X_Site="zzz").upstream == "a"
            assert client.request("GET", "/h", X_Port=str(b.port)).upstream == "b"
            # Filled in to something that is no address: a 502, not a crash.
            assert client.request("GET", "/h").status == 502
            assert client.request("GET", "/h", X_Port="notaport").status == 502
            client.close()
