"""``>Field`` in a ``set`` (Caddy's "set, deferred"): applied when the response headers
are written, so it wins over what later handlers (here, an upstream's answer) set."""

from __future__ import annotations

from pathlib import Path

from caddytw.caddyfile.adapter import adapt
from caddytw.http.headerops import ResponseHeaderOps
from tests.proxy.harness import get, upstreams
from tests.support.ports import free_port
from tests.support.server import running_server

CADDYFILE = """
:80 {
    header >Server "front {http.request.method}"
    header X-Now now
    header >X-Up "up-yes" "replaced"
    reverse_proxy UPSTREAM {
        header_down >X-Up "up-yes"
    }
}
"""


def test_deferred_set_wins_over_the_upstream(tmp_path: Path) -> None:
    port = free_port()
    with upstreams("a") as (upstream,):
        config, _ = adapt(CADDYFILE.replace("UPSTREAM", upstream.dial))
        server = config["apps"]["http"]["servers"]["srv0"]
        server["listen"] = [f"127.0.0.1:{port}"]
        config["admin"] = {"disabled": True}
        with running_server(config, tmp_path, [port]):
            reply = get(port, "/")
    assert reply.status == 200
    assert reply.headers.get_all("Server") == ["front GET"]  # the upstream said "upstream"
    assert reply.headers["X-Up"] == "replaced"  # deferred replace after header_down
    assert reply.headers["X-Now"] == "now"
    assert reply.json()["name"] == "a"


def test_a_deferred_set_makes_the_response_ops_wait() -> None:
    ops = ResponseHeaderOps.parse({"set": {">X-A": ["1"], "X-B": ["2"]}}, "r")
    assert ops.waits
    assert [name.source for name, _ in ops.ops.set] == ["X-A", "X-B"]
    assert not ResponseHeaderOps.parse({"set": {"X-A": ["1"]}}, "r").waits
    replace = {"replace": {">X-A": [{"search": "a", "replace": "b"}]}}
    assert ResponseHeaderOps.parse(replace, "r").waits
