"""The ``metrics`` handler serves Prometheus text on a route, negotiating OpenMetrics and
gzip as Debian's Caddy does on the same Caddyfile."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest

from caddytw.caddyfile.adapter import adapt
from tests.compat.harness import CADDY, both_servers, fetch

pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")

CADDYFILE = """
:80 {
    metrics /metrics
    metrics /plain {
        disable_openmetrics
    }
    respond / "hello"
}
"""
OPENMETRICS = "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5"


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    config, _ = adapt(CADDYFILE)
    with both_servers(config, tmp_path_factory.mktemp("metrics")) as both:
        yield both


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/metrics", {}),
        ("/metrics", {"Accept": OPENMETRICS}),
        ("/plain", {"Accept": OPENMETRICS}),
        ("/metrics", {"Accept-Encoding": "gzip"}),
    ],
)
def test_metrics_route_answers_as_caddy(ports, path, headers) -> None:
    for port in ports:
        assert fetch(port, "GET", "/", headers).body == b"hello"
    caddy, ours = (fetch(port, "GET", path, headers) for port in ports)
    assert ours.status == caddy.status == 200
    for name in ("content-type", "content-encoding"):
        assert ours.headers.get(name) == caddy.headers.get(name), name
    body = gzip.decompress(ours.body) if "gzip" in headers.get("Accept-Encoding", "") else ours.body
    text = body.decode()
    assert "caddy_http_requests_total" in text
    openmetrics = ours.headers["content-type"].startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n") == openmetrics
