"""Request metrics counted in batches (issue 18) read exactly as per-request updates do.

In one process ``request_finished`` adds to plain lists and a scrape moves them into the
Prometheus values first; these check a scrape right after requests shows each of them
(count, status class, duration buckets and sum, in-flight, body bytes).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from twisted.web.http_headers import Headers

from caddytw.admin import metrics


def _request(server: str, code: int, seconds_ago: float, body: int, sent: int) -> Any:
    headers = Headers()
    if body:
        headers.setRawHeaders(b"content-length", [b"%d" % body])
    return SimpleNamespace(
        site=SimpleNamespace(caddy_server=SimpleNamespace(name=server)),
        caddy_handler="static_response",
        code=code,
        started_at=time.time() - seconds_ago,
        requestHeaders=headers,
        sentLength=sent,
    )


def _value(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start!r} not in the scrape")


def test_a_scrape_shows_every_finished_request() -> None:
    server = "batched_test_srv"
    labels = f'code="2xx",handler="static_response",server="{server}"'
    before = metrics.render()[0].decode()
    assert f'server="{server}"' not in before
    finished = [_request(server, 200, 0.0, 10, 100), _request(server, 204, 3.0, 0, 0)]
    open_one = _request(server, 200, 0.0, 0, 0)
    for request in (*finished, open_one):
        metrics.request_started(request)
    for request in finished:
        metrics.request_finished(request)
    text = metrics.render()[0].decode()
    assert _value(text, f"caddy_http_requests_total{{{labels}}}") == 2
    assert _value(text, f"caddy_http_request_duration_seconds_count{{{labels}}}") == 2
    bucket = (
        'caddy_http_request_duration_seconds_bucket{code="2xx",handler="static_response",'
        f'le="0.005",server="{server}"}}'
    )
    assert _value(text, bucket) == 1
    assert _value(text, bucket.replace("0.005", "5.0")) == 2
    assert _value(text, f"caddy_http_request_duration_seconds_sum{{{labels}}}") >= 3.0
    assert _value(text, f'caddy_http_requests_in_flight{{server="{server}"}}') == 1
    assert _value(text, f'caddy_http_request_body_bytes_total{{server="{server}"}}') == 10
    assert _value(text, f'caddy_http_response_body_bytes_total{{server="{server}"}}') == 100
    metrics.request_finished(open_one)
    again = metrics.render()[0].decode()
    assert _value(again, f"caddy_http_requests_total{{{labels}}}") == 3
    assert _value(again, f'caddy_http_requests_in_flight{{server="{server}"}}') == 0


def test_aborted_requests_and_certificate_expiry_reach_the_next_scrape() -> None:
    """Both are counted without prometheus_client (a serving process need not import
    it) and must still show in the first scrape after them."""
    server = "batched_abort_srv"
    request = _request(server, 200, 0.0, 0, 0)
    metrics.request_started(request)
    metrics.request_aborted(request)
    metrics.set_certificate_expiry("expiry.batched.test", 1_900_000_000.0)
    text = metrics.render()[0].decode()
    assert _value(text, f'caddy_http_requests_aborted_total{{server="{server}"}}') == 1
    assert _value(text, f'caddy_http_requests_in_flight{{server="{server}"}}') == 0
    expiry = 'caddy_tls_certificate_expiry_timestamp_seconds{subject="expiry.batched.test"}'
    assert _value(text, expiry) == 1_900_000_000.0
