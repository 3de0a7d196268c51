"""Prometheus metrics for the server and hooks other parts call to report their state.

Request metrics are counted once per request, when it finishes (``request_finished``
from ``CaddySite.log``), from a cache of labelled children so the hot path does no
label lookups. Other parts report through the small functions below; none of them
needs to know about prometheus_client.

With worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before this module is first
imported) every process writes its values to files in that directory and ``render``
sums them, so a scrape of any worker shows the whole server.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REGISTRY = CollectorRegistry(auto_describe=True)
if not MULTIPROCESS:
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)
    GCCollector(registry=REGISTRY)

_REQUEST_LABELS = ("server", "handler", "code")
_Mode = Literal["all", "livesum", "livemin", "livemax"]
_LIVE: _Mode = "livesum" if MULTIPROCESS else "all"
_LIVE_MIN: _Mode = "livemin" if MULTIPROCESS else "all"
_LIVE_MAX: _Mode = "livemax" if MULTIPROCESS else "all"

REQUESTS = Counter(
    "caddy_http_requests_total",
    "Requests answered, by server, answering handler and status class.",
    _REQUEST_LABELS,
    registry=REGISTRY,
)
DURATION = Histogram(
    "caddy_http_request_duration_seconds",
    "Time from the complete request head to the end of the response.",
    _REQUEST_LABELS,
    registry=REGISTRY,
)
BYTES_IN = Counter(
    "caddy_http_request_body_bytes_total",
    "Request body bytes received (by Content-Length).",
    ("server",),
    registry=REGISTRY,
)
BYTES_OUT = Counter(
    "caddy_http_response_body_bytes_total",
    "Response body bytes sent.",
    ("server",),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "caddy_http_requests_in_flight",
    "Requests being handled right now.",
    ("server",),
    registry=REGISTRY,
    multiprocess_mode=_LIVE,
)
ABORTED = Counter(
    "caddy_http_requests_aborted_total",
    "Requests whose client went away before the response ended.",
    ("server",),
    registry=REGISTRY,
)
UPSTREAM_HEALTHY = Gauge(
    "caddy_reverse_proxy_upstreams_healthy",
    "1 when the upstream is healthy, 0 when it is not.",
    ("upstream",),
    registry=REGISTRY,
    multiprocess_mode=_LIVE_MIN,
)
UPSTREAM_FAILS = Counter(
    "caddy_reverse_proxy_upstream_fails_total",
    "Failed requests or health checks counted against an upstream.",
    ("upstream",),
    registry=REGISTRY,
)
CERT_EXPIRY = Gauge(
    "caddy_tls_certificate_expiry_timestamp_seconds",
    "When a managed certificate expires (Unix time).",
    ("subject",),
    registry=REGISTRY,
    multiprocess_mode=_LIVE_MAX,
)
SYNC_COMMITS = Counter(
    "caddytw_sync_commits_total",
    "File sync commits accepted, by sync root.",
    ("root",),
    registry=REGISTRY,
)
SYNC_CLIENTS = Gauge(
    "caddytw_sync_clients_connected",
    "Sync clients connected to the event stream, by sync root.",
    ("root",),
    registry=REGISTRY,
    multiprocess_mode=_LIVE,
)

_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_server_children: dict[str, tuple[Any, Any, Any]] = {}


def _per_server(server: str) -> tuple[Any, Any, Any]:
    children = _server_children.get(server)
    if children is None:
        children = (
            IN_FLIGHT.labels(server),
            BYTES_IN.labels(server),
            BYTES_OUT.labels(server),
        )
        _server_children[server] = children
    return children


def _server_of(request: Any) -> str:
    site = getattr(request, "site", None)
    runtime = getattr(site, "caddy_server", None)
    return getattr(runtime, "name", "") or ""


def request_started(request: Any) -> None:
    """A request entered its server's routes."""
    server = _server_of(request)
    request.metrics_server = server
    _per_server(server)[0].inc()


def request_finished(request: Any) -> None:
    """A request's response ended: count it once, with its status class and duration."""
    server = getattr(request, "metrics_server", None)
    if server is None:
        return
    request.metrics_server = None
    in_flight, bytes_in, bytes_out = _per_server(server)
    in_flight.dec()
    code = request.code
    key = (server, getattr(request, "caddy_handler", "") or "", f"{code // 100}xx")
    children = _children.get(key)
    if children is None:
        children = (REQUESTS.labels(*key), DURATION.labels(*key))
        _children[key] = children
    children[0].inc()
    started = getattr(request, "started_at", None)
    if started is not None:
        children[1].observe(max(0.0, time.time() - started))
    length = request.requestHeaders.getRawHeaders(b"content-length")
    if length:
        with contextlib.suppress(ValueError):
            bytes_in.inc(max(0, int(length[0])))
    sent = getattr(request, "sentLength", 0)
    if sent:
        bytes_out.inc(sent)


def request_aborted(request: Any) -> None:
    """The client left before the response ended (no status to count)."""
    server = getattr(request, "metrics_server", None)
    if server is None:
        return
    request.metrics_server = None
    _per_server(server)[0].dec()
    ABORTED.labels(server).inc()


def set_upstream_healthy(address: str, healthy: bool) -> None:
    UPSTREAM_HEALTHY.labels(address).set(1 if healthy else 0)


def upstream_failed(address: str, count: int = 1) -> None:
    UPSTREAM_FAILS.labels(address).inc(count)


def forget_upstream(address: str) -> None:
    """An upstream left the config: stop reporting its health."""
    with contextlib.suppress(KeyError):
        UPSTREAM_HEALTHY.remove(address)


def set_certificate_expiry(subject: str, not_after: float) -> None:
    CERT_EXPIRY.labels(subject).set(not_after)


def sync_committed(root: str, count: int = 1) -> None:
    SYNC_COMMITS.labels(root).inc(count)


def sync_client_connected(root: str) -> None:
    SYNC_CLIENTS.labels(root).inc()


def sync_client_disconnected(root: str) -> None:
    SYNC_CLIENTS.labels(root).dec()


#: What Caddy 2.6's Prometheus library labels its formats (prometheus_client's own
#: labels follow its newer format versions, with the same text for these metrics).
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=0.0.1; charset=utf-8"


def render(openmetrics: bool = False) -> tuple[bytes, str]:
    """The current metrics in Prometheus text format (or OpenMetrics), and their
    Content-Type. Shared by the admin ``/metrics`` and the ``metrics`` handler."""
    registry = REGISTRY
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    if openmetrics:
        return generate_openmetrics(registry), OPENMETRICS_CONTENT_TYPE
    return generate_latest(registry), TEXT_CONTENT_TYPE


def wants_openmetrics(accept: str) -> bool:
    """Content negotiation as Prometheus' Go handler: OpenMetrics when the Accept header
    lists ``application/openmetrics-text``."""
    return any(
        part.split(";")[0].strip().lower() == "application/openmetrics-text"
        for part in accept.split(",")
    )
