"""An upstream's answer without a Content-Type leaves with Go's guess for it, as Caddy's
do (Go's ``ResponseWriter`` sniffs every untyped body); nothing is added to an encoded
or empty answer. Expected values checked against Debian's Caddy 2.6."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxy.harness import Client, port_of, proxy, proxy_route, upstreams


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("untyped")
    with upstreams("one") as (upstream,), proxy(Path(tmp), proxy_route([upstream])) as server:
        yield port_of(server)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text", "text/plain; charset=utf-8"),
        ("html", "text/html; charset=utf-8"),
        ("binary", "application/octet-stream"),
        # No length: Caddy flushes the head before the body (flush_interval -1).
        ("chunked", None),
        ("gzip", None),  # Go does not sniff an encoded body
        ("empty", None),  # nothing written, nothing to guess from
    ],
)
def test_an_untyped_answer_gets_gos_guess(served: int, kind: str, expected: str | None) -> None:
    client = Client(served)
    try:
        reply = client.request("GET", f"/untyped?kind={kind}")
        assert reply.status == 200
        assert reply.headers.get("Content-Type") == expected
    finally:
        client.close()


def test_a_typed_answer_keeps_its_type(served: int) -> None:
    client = Client(served)
    try:
        assert client.request("GET", "/health").headers.get("Content-Type") == "text/plain"
    finally:
        client.close()
