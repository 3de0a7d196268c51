"""Prometheus metrics for the server and hooks other parts call to report their state.

Request metrics are counted once per request, when it finishes (``request_finished``
from ``CaddySite.log``), into plain per-label-set lists that a scrape moves into the
Prometheus values (:data:`BATCHED`), so the hot path does no label lookups or locks.
Other parts report through the small functions below; none of them needs to know
about prometheus_client.

With worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before this module is first
imported) every process writes its values to files in that directory and ``render``
sums them, so a scrape of any worker shows the whole server.
"""

from __future__ import annotations

import contextlib
import os
import time
from bisect import bisect_left
from typing import Any, Literal

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

_REQUEST_LABELS = ("server", "handler", "code")
_Mode = Literal["all", "livesum", "livemin", "livemax"]
_LIVE: _Mode = "livesum" if MULTIPROCESS else "all"
_LIVE_MIN: _Mode = "livemin" if MULTIPROCESS else "all"
_LIVE_MAX: _Mode = "livemax" if MULTIPROCESS else "all"
#: The request duration buckets: prometheus_client's (and Go's) defaults, named here so
#: the batched counts below need no Histogram to exist yet.
_BUCKET_BOUNDS: tuple[float, ...] = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
    float("inf"),
)


class _Metrics:
    """The registry and its metrics, made by the first thing that needs a Prometheus
    value (:func:`_prometheus`): a scrape, a worker's request, an upstream's health. A
    process that only serves (one process, batched request counts) never imports
    prometheus_client, which is ~2 MB of resident memory and 40 modules."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        if not MULTIPROCESS:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.requests = Counter(
            "caddy_http_requests_total",
            "Requests answered, by server, answering handler and status class.",
            _REQUEST_LABELS,
            registry=registry,
        )
        self.duration = Histogram(
            "caddy_http_request_duration_seconds",
            "Time from the complete request head to the end of the response.",
            _REQUEST_LABELS,
            registry=registry,
            buckets=_BUCKET_BOUNDS,
        )
        self.bytes_in = Counter(
            "caddy_http_request_body_bytes_total",
            "Request body bytes received (by Content-Length).",
            ("server",),
            registry=registry,
        )
        self.bytes_out = Counter(
            "caddy_http_response_body_bytes_total",
            "Response body bytes sent.",
            ("server",),
            registry=registry,
        )
        self.in_flight = Gauge(
            "caddy_http_requests_in_flight",
            "Requests being handled right now.",
            ("server",),
            registry=registry,
            multiprocess_mode=_LIVE,
        )
        self.aborted = Counter(
            "caddy_http_requests_aborted_total",
            "Requests whose client went away before the response ended.",
            ("server",),
            registry=registry,
        )
        self.upstream_healthy = Gauge(
            "caddy_reverse_proxy_upstreams_healthy",
            "1 when the upstream is healthy, 0 when it is not.",
            ("upstream",),
            registry=registry,
            multiprocess_mode=_LIVE_MIN,
        )
        self.upstream_fails = Counter(
            "caddy_reverse_proxy_upstream_fails_total",
            "Failed requests or health checks counted against an upstream.",
            ("upstream",),
            registry=registry,
        )
        self.cert_expiry = Gauge(
            "caddy_tls_certificate_expiry_timestamp_seconds",
            "When a managed certificate expires (Unix time).",
            ("subject",),
            registry=registry,
            multiprocess_mode=_LIVE_MAX,
        )
        self.sync_commits = Counter(
            "caddytw_sync_commits_total",
            "File sync commits accepted, by sync root.",
            ("root",),
            registry=registry,
        )
        self.sync_clients = Gauge(
            "caddytw_sync_clients_connected",
            "Sync clients connected to the event stream, by sync root.",
            ("root",),
            registry=registry,
            multiprocess_mode=_LIVE,
        )


_made: list[_Metrics] = []


def _prometheus() -> _Metrics:
    """The process's metrics, made on first use."""
    if not _made:
        _made.append(_Metrics())
    return _made[0]


if MULTIPROCESS:  # a worker updates them on every request: make them before the first
    _prometheus()


_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_server_children: dict[str, tuple[Any, Any, Any]] = {}

#: In one process (no ``PROMETHEUS_MULTIPROC_DIR``) the request metrics are counted in
#: plain lists and moved into prometheus_client's values by :func:`flush`, which every
#: scrape (:func:`render`) runs first: a scrape sees exactly what a per-request update
#: would have shown, and a request costs list additions instead of six locked value
#: updates and a histogram bucket search. Memory is bounded by the label sets, never by
#: the number of requests. Worker processes keep the direct updates: another worker's
#: scrape reads their files and cannot ask them to flush.
BATCHED = not MULTIPROCESS
#: Per server: [in-flight change, request body bytes, response body bytes, aborted].
_pending_server: dict[str, list[int]] = {}
#: Per (server, handler, status class): [requests, duration sum, per-bucket counts].
_pending_requests: dict[tuple[str, str, str], list[Any]] = {}
#: Per certificate subject: its latest expiry, set into the gauge by :func:`flush`.
_pending_expiry: dict[str, float] = {}
_STATUS_CLASSES = tuple(f"{n}xx" for n in range(10))


def _per_server(server: str) -> tuple[Any, Any, Any]:
    children = _server_children.get(server)
    if children is None:
        made = _prometheus()
        children = (
            made.in_flight.labels(server),
            made.bytes_in.labels(server),
            made.bytes_out.labels(server),
        )
        _server_children[server] = children
    return children


def _per_request_key(key: tuple[str, str, str]) -> tuple[Any, Any]:
    children = _children.get(key)
    if children is None:
        made = _prometheus()
        children = (made.requests.labels(*key), made.duration.labels(*key))
        _children[key] = children
    return children


def _server_of(request: Any) -> str:
    site = getattr(request, "site", None)
    runtime = getattr(site, "caddy_server", None)
    return getattr(runtime, "name", "") or ""


def request_started(request: Any) -> None:
    """A request entered its server's routes."""
    server = _server_of(request)
    request.metrics_server = server
    if BATCHED:
        pending = _pending_server.get(server)
        if pending is None:  # its labelled children are made by the next flush
            pending = _pending_server[server] = [0, 0, 0, 0]
        pending[0] += 1
        return
    _per_server(server)[0].inc()


def _status_class(code: int) -> str:
    index = code // 100
    return _STATUS_CLASSES[index] if 0 <= index < 10 else f"{index}xx"


def _request_body_length(request: Any) -> int:
    # Straight from the Headers' dict (twisted's canonical name): one lookup per request.
    length = request.requestHeaders._rawHeaders.get(b"Content-Length")
    if length:
        with contextlib.suppress(ValueError):
            return max(0, int(length[0]))
    return 0


#: The pending list of ``_pending_requests`` for a (server, handler, status code): the
#: status class is worked out once per code, not once per request.
_pending_by_code: dict[tuple[str, str, int], list[Any]] = {}


def _pending_for(server: str, handler: str, code: int) -> list[Any]:
    key = (server, handler, _status_class(code))
    pending = _pending_requests.get(key)
    if pending is None:  # its labelled children are made by the next flush
        pending = _pending_requests[key] = [0, 0.0, [0] * len(_BUCKET_BOUNDS)]
    _pending_by_code[(server, handler, code)] = pending
    return pending


def request_finished(request: Any) -> None:
    """A request's response ended: count it once, with its status class and duration."""
    server = getattr(request, "metrics_server", None)
    if server is None:
        return
    request.metrics_server = None
    handler = getattr(request, "caddy_handler", "") or ""
    started = getattr(request, "started_at", None)
    sent = getattr(request, "sentLength", 0)
    if BATCHED:
        pending_server = _pending_server[server]
        pending_server[0] -= 1
        if b"Content-Length" in request.requestHeaders._rawHeaders:
            pending_server[1] += _request_body_length(request)
        pending_server[2] += sent
        code = request.code
        pending = _pending_by_code.get((server, handler, code))
        if pending is None:
            pending = _pending_for(server, handler, code)
        pending[0] += 1
        if started is not None:
            duration = time.time() - started
            if duration < 0.0:
                duration = 0.0
            pending[1] += duration
            pending[2][bisect_left(_BUCKET_BOUNDS, duration)] += 1
        return
    key = (server, handler, _status_class(request.code))
    in_flight, bytes_in, bytes_out = _per_server(server)
    in_flight.dec()
    requests, duration_child = _per_request_key(key)
    requests.inc()
    if started is not None:
        duration_child.observe(max(0.0, time.time() - started))
    received = _request_body_length(request)
    if received:
        bytes_in.inc(received)
    if sent:
        bytes_out.inc(sent)


def flush() -> None:
    """Move the batched request counts into the Prometheus values (see :data:`BATCHED`)."""
    while _pending_expiry:
        subject, not_after = _pending_expiry.popitem()
        _prometheus().cert_expiry.labels(subject).set(not_after)
    for server, pending_server in _pending_server.items():
        # Every server that had a request is in the scrape, counted or not.
        in_flight, bytes_in, bytes_out = _per_server(server)
        in_flight_change, received, sent, aborted = pending_server
        if not (in_flight_change or received or sent or aborted):
            continue
        pending_server[:] = [0, 0, 0, 0]
        if aborted:
            _prometheus().aborted.labels(server).inc(aborted)
        if in_flight_change:
            in_flight.inc(in_flight_change)
        if received:
            bytes_in.inc(received)
        if sent:
            bytes_out.inc(sent)
    for key, pending in _pending_requests.items():
        count, duration_sum, buckets = pending
        if not count:
            continue
        pending[0] = 0
        pending[1] = 0.0
        pending[2] = [0] * len(_BUCKET_BOUNDS)
        requests, duration_child = _per_request_key(key)
        requests.inc(count)
        # What ``Histogram.observe`` does per observation, once per bucket: the count of
        # observations is the bucket total, the sum is kept beside it.
        observed = sum(buckets)
        if observed:
            duration_child._sum.inc(duration_sum)
            for index, number in enumerate(buckets):
                if number:
                    duration_child._buckets[index].inc(number)


def request_aborted(request: Any) -> None:
    """The client left before the response ended (no status to count)."""
    server = getattr(request, "metrics_server", None)
    if server is None:
        return
    request.metrics_server = None
    if BATCHED:
        pending = _pending_server[server]
        pending[0] -= 1
        pending[3] += 1
        return
    _per_server(server)[0].dec()
    _prometheus().aborted.labels(server).inc()


def set_upstream_healthy(address: str, healthy: bool) -> None:
    _prometheus().upstream_healthy.labels(address).set(1 if healthy else 0)


def upstream_failed(address: str, count: int = 1) -> None:
    _prometheus().upstream_fails.labels(address).inc(count)


def forget_upstream(address: str) -> None:
    """An upstream left the config: stop reporting its health."""
    with contextlib.suppress(KeyError):
        _prometheus().upstream_healthy.remove(address)


def set_certificate_expiry(subject: str, not_after: float) -> None:
    if BATCHED:  # set by the next scrape: loading a certificate imports no prometheus_client
        _pending_expiry[subject] = not_after
        return
    _prometheus().cert_expiry.labels(subject).set(not_after)


def sync_committed(root: str, count: int = 1) -> None:
    _prometheus().sync_commits.labels(root).inc(count)


def sync_client_connected(root: str) -> None:
    _prometheus().sync_clients.labels(root).inc()


def sync_client_disconnected(root: str) -> None:
    _prometheus().sync_clients.labels(root).dec()


#: What Caddy 2.6's Prometheus library labels its formats (prometheus_client's own
#: labels follow its newer format versions, with the same text for these metrics).
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=0.0.1; charset=utf-8"


def render(openmetrics: bool = False) -> tuple[bytes, str]:
    """The current metrics in Prometheus text format (or OpenMetrics), and their
    Content-Type. Shared by the admin ``/metrics`` and the ``metrics`` handler."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    flush()
    registry = _prometheus().registry
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
