"""The request object every handler sees: twisted.web's Request plus Caddy's state.

Caddy keeps per-request state in the context (vars, regexp captures, the error being
handled, the original URI); here it lives on the request so that handlers, matchers and
placeholders share it without globals.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server

from caddytw import metrics
from caddytw.config.netaddr import host_and_port
from caddytw.http.body import RequestBody, body_from_file
from caddytw.http.dates import date_now
from caddytw.http.errors import status_text

log = Logger()

_PROTO_NAMES = {b"HTTP/2": "HTTP/2.0", b"HTTP/3": "HTTP/3.0"}


#: What a handler's ``render`` returns: the whole body (``bytes``, delivered with its
#: Content-Length by :func:`caddytw.http.dispatch.dispatch`), or twisted's
#: ``NOT_DONE_YET`` (an ``int``) when the handler took the answer over.
Answer: TypeAlias = bytes | int


class Handler(Protocol):
    """What a route runs: ``render`` answers the request in one way (see
    :mod:`caddytw.http.dispatch`), or raises :class:`caddytw.http.errors.HandlerError`.

    Defined beside :class:`CaddyRequest` because each names the other (a request holds the
    error routes in scope); :mod:`caddytw.http.dispatch` is where it is used and exported.
    """

    def render(self, request: CaddyRequest) -> Answer: ...


class ErrorInfo:
    """The error being handled, as ``{http.error.*}`` exposes it."""

    def __init__(self, status: int, message: str, error_id: str, trace: str) -> None:
        self.status = status
        self.message = message
        self.error_id = error_id
        self.trace = trace


class CaddyRequest(server.Request):
    """A request with Caddy semantics: no default Content-Type, placeholders, vars, errors."""

    defaultContentType = None  # Caddy never invents a Content-Type for an empty answer
    #: Set on WebSocket tunnels and event streams: they must not hold up a graceful stop.
    long_lived = False
    #: The JSON name of the last handler the request reached (the metrics' label).
    caddy_handler: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.caddy_vars: dict[str, Any] = {}
        self.placeholder_values: dict[str, str] = {}
        self.route_groups: dict[int, set[str]] = {}
        self.error_scopes: list[Handler] = []
        self.header_hooks: list[Callable[[CaddyRequest], None]] = []
        # Lazy placeholders (the ``map`` handler): asked in order after placeholder_values.
        self.placeholder_providers: list[Callable[[CaddyRequest, str], str | None]] = []
        # What the first write carries, for header hooks that decide on it (``encode``).
        self.first_chunk: bytes = b""
        self.caddy_error: ErrorInfo | None = None
        self.original_uri: bytes = b""
        self.original_method: bytes = b""
        self.decoded_path: str = "/"
        self.started_at: float = time.time()
        self.proto_override: str | None = None
        self._hooks_ran = False
        self._body: RequestBody | None = None

    @property
    def body(self) -> RequestBody:
        """The request body as it arrives (:mod:`caddytw.http.body`). The HTTP/1.1
        channel sets it when the head is complete; a protocol that still collects the
        body into ``content`` first (HTTP/2 and HTTP/3 for now) gets it from there."""
        if self._body is None:
            self._body = body_from_file(self.content)
        return self._body

    @body.setter
    def body(self, body: RequestBody) -> None:
        self._body = body

    # -- lifecycle -------------------------------------------------------------------

    def process(self) -> None:
        """Hand the request to the server's root resource (no child traversal: routing
        matches on the whole path, as Caddy does)."""
        self.site = self.channel.site  # type: ignore[attr-defined]
        self.started_at = time.time()
        if self._answered_by_server():
            return
        self.original_uri = self.uri
        self.original_method = self.method
        self.decoded_path = decode_path(self.path)
        # Straight into the Headers' dict (names in twisted's canonical case): these two
        # run for every request, and setHeader's checks cost more than the rest of it.
        headers = self.responseHeaders._rawHeaders
        headers[b"Server"] = [b"Caddy"]
        headers[b"Date"] = [date_now()]
        self.prepath = []
        self.postpath = []
        try:
            self.render(self.site.resource)
        except BaseException:
            self.processingFailed(Failure())

    def _answered_by_server(self) -> bool:
        """What Go's HTTP server settles before any handler runs, as Caddy's does: an
        absolute-form target becomes its path and Host, an HTTP/1.1 request without Host
        is refused, and ``OPTIONS *`` gets an empty 200."""
        if self.uri[:7].lower() == b"http://" or self.uri[:8].lower() == b"https://":
            authority, slash, rest = self.uri.partition(b"://")[2].partition(b"/")
            self.requestHeaders.setRawHeaders(b"host", [authority])
            self.set_uri(slash + rest if slash else b"/")
        hosts = self.requestHeaders.getRawHeaders(b"host")
        if self.clientproto == b"HTTP/1.1" and not hosts:
            return self._bad_request("missing required Host header")
        if hosts is not None and len(hosts) > 1:
            return self._bad_request("too many Host headers")
        if hosts and not valid_host(hosts[0]):
            return self._bad_request("malformed Host header")
        if self.method == b"OPTIONS" and self.uri == b"*":
            self.setHeader(b"content-length", b"0")
            self.finish()
            return True
        return False

    def _bad_request(self, why: str) -> bool:
        """Go's own answer to a request it refuses before any handler (Caddy's too)."""
        body = f"400 Bad Request: {why}".encode()
        self.setResponseCode(400, f"Bad Request: {why}".encode())
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")
        self.setHeader(b"connection", b"close")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()
        return True

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if not self.finished:
            metrics.request_aborted(self)

    def processingFailed(self, reason: Failure) -> None:
        """What escaped the site's root resource. Handlers' errors never get here (the
        root renders them through :func:`caddytw.http.dispatch.dispatch`, which routes
        them to the error routes): this is a fault of the server's own, answered with an
        empty 500, or a cut connection once the answer started."""
        log.failure("request processing failed", failure=reason)
        self.end_with_status(500)

    def end_with_status(self, status: int) -> None:
        """An empty answer with ``status``; once the answer started, all the client can
        learn is a cut connection; once it left, nothing."""
        if self.client_gone:
            return
        if self.startedWriting:
            transport_of(self).loseConnection()
            return
        self.setResponseCode(status)
        self.setHeader(b"content-length", b"0")
        self.finish()

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Status lines carry Go's reason phrases, as Caddy's do."""
        if message is None:
            message = _reason_phrase(code)
        super().setResponseCode(code, message)

    def set_uri(self, uri: bytes) -> None:
        """Rewrite the request target, keeping ``path``, ``args`` and placeholders in step."""
        self.uri = uri
        path, _, query = uri.partition(b"?")
        self.path = path
        self.decoded_path = decode_path(path)
        # twisted.web's own bytes parser, as for the original target (urllib's rejects
        # non-ASCII bytes, which a rewrite may legitimately produce).
        self.args = http.parse_qs(query, 1) if query else {}

    def _run_header_hooks(self) -> None:
        if self._hooks_ran:
            return
        self._hooks_ran = True
        for hook in reversed(self.header_hooks):
            hook(self)

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self.first_chunk = data
            self._run_header_hooks()
            self.first_chunk = b""
        super().write(data)

    def finish(self) -> None:
        if not self.startedWriting:
            self._run_header_hooks()
        super().finish()

    # -- what Caddy calls request properties -----------------------------------------

    @property
    def request_hostport(self) -> str:
        host = self.getHeader(b"host")
        return host.decode("latin-1") if host else ""

    @property
    def request_host(self) -> str:
        return host_and_port(self.request_hostport)[0]

    @property
    def scheme(self) -> str:
        return "https" if self.isSecure() else "http"

    @property
    def proto(self) -> str:
        if self.proto_override:
            return self.proto_override
        raw = self.clientproto
        return _PROTO_NAMES.get(raw, raw.decode("latin-1"))

    @property
    def remote_host(self) -> str:
        peer = self.getClientAddress()
        return str(getattr(peer, "host", ""))

    @property
    def remote_port(self) -> int:
        return int(getattr(self.getClientAddress(), "port", 0))

    @property
    def query_string(self) -> str:
        return self.uri.partition(b"?")[2].decode("latin-1")

    def header_text(self, name: str) -> str | None:
        """All values of a request header joined with ``,`` (None when absent)."""
        values = self.requestHeaders.getRawHeaders(name.encode("latin-1"))
        if values is None:
            return None
        return ",".join(value.decode("latin-1") for value in values)

    # -- errors ----------------------------------------------------------------------

    @property
    def client_gone(self) -> bool:
        return bool(self._disconnected or self.finished or self.channel is None)


def transport_of(request: Any) -> Any:
    """The connection under a request (typed loosely: HTTP/1, HTTP/2 and HTTP/3 differ)."""
    return request.channel.transport


@functools.lru_cache(maxsize=1024)
def _reason_phrase(code: int) -> bytes | None:
    return status_text(code).encode("latin-1") or None


#: The bytes Go accepts in a Host header (``httpguts.ValidHostHeader``): a name, an IP
#: literal in brackets, a port; never spaces, ``/``, ``@``, quotes or markup.
_HOST_BYTES = (
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&'()*+,-.:;=[]_~"
    + bytes(range(0x80, 0x100))
)


def valid_host(host: bytes) -> bool:
    """Whether ``host`` is a Host header value Go's server (so Caddy) accepts (one C
    call: deleting every allowed byte leaves nothing)."""
    return not host.translate(None, _HOST_BYTES)


def decode_path(raw: bytes) -> str:
    """The request path percent-decoded, as Go's ``URL.Path`` (invalid UTF-8 replaced)."""
    if b"%" not in raw:
        return raw.decode("utf-8", "surrogateescape")
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
