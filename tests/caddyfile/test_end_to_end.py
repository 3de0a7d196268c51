"""A Caddyfile adapted by us and served by caddytw answers like Caddy 2.6.2.

The expected answers were checked against ``caddy run`` with the same
Caddyfile (curl on loopback).  Only handlers the core already provides are
used here (static_response, subroute, vars, error).
"""

from __future__ import annotations

import pytest

from caddytw.caddyfile import adapt
from tests.support.memory import MemoryServer

CADDYFILE = """\
{
\tadmin off
}

:8080 {
\t@post method POST
\trespond @post "posted" 201
\tredir /old /new permanent
\thandle /api/* {
\t\trespond "api {path}"
\t}
\terror /forbidden 403
\thandle_errors {
\t\trespond "oops {err.status_code}"
\t}
\tvars greeting hello
\trespond "{vars.greeting} {host}"
}
"""


@pytest.fixture(scope="module")
def server() -> MemoryServer:
    config, warnings = adapt(CADDYFILE)
    assert warnings == []
    return MemoryServer(config)


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/", 200, b"hello localhost"),
        ("GET", "/api/x", 200, b"api /api/x"),
        ("GET", "/forbidden", 403, b"oops 403"),
        ("POST", "/", 201, b"posted"),
    ],
)
def test_answers(server: MemoryServer, method: str, path: str, status: int, body: bytes) -> None:
    response = server.request(method, path)
    assert (response.status, response.body) == (status, body)


def test_redirect(server: MemoryServer) -> None:
    response = server.request("GET", "/old")
    assert response.status == 301
    assert response.header("Location") == "/new"
