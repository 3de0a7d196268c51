"""The request object every handler sees: twisted.web's Request plus Caddy's state.

Caddy keeps per-request state in the context (vars, regexp captures, the error being
handled, the original URI); here it lives on the request so that handlers, matchers and
placeholders share it without globals.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, AnyStr, Protocol, TypeAlias
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server

# Names taken out of twisted.web.http once: attribute access on that module goes
# through twisted's deprecation proxy, which costs more than the lookup it wraps.
from twisted.web.http import NO_BODY_CODES as _NO_BODY_CODES
from twisted.web.http import parse_qs
from twisted.web.http_headers import Headers, _nameEncoder

from caddytw.admin import metrics
from caddytw.config.netaddr import host_and_port
from caddytw.http.body import RequestBody, body_from_file
from caddytw.http.dates import date_now
from caddytw.http.errors import status_text

if TYPE_CHECKING:
    from caddytw.wire.channel import Channel

log = Logger()

_PROTO_NAMES = {b"HTTP/2": "HTTP/2.0", b"HTTP/3": "HTTP/3.0"}

#: twisted's own cache of canonical header names (``b"content-type"`` ->
#: ``b"Content-Type"``), filled by its encoder with valid names only: a name found here
#: needs neither the check nor the canonicalisation again.
_CANONICAL: dict[bytes | str, bytes] = _nameEncoder._canonicalHeaderCache


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
    #: The HTTP/1.1 connection or the HTTP/2 or HTTP/3 stream the request came on
    #: (twisted types it as its own ``HTTPChannel``, which none of ours is).
    channel: Channel  # type: ignore[assignment]

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            super().__init__(channel, *args, **kwargs)
        else:
            # What twisted.web's Request.__init__ and Componentized.__init__ set, without
            # their keyword handling: this runs once per request on every protocol.
            self.notifications = []
            self.channel = channel
            self.client = channel.getPeer()
            self.host = channel.getHost()
            self.requestHeaders = Headers()
            self.received_cookies = {}
            self.responseHeaders = Headers()
            self.cookies = []
            self.transport = channel.transport
            self.queued = False
            self._parsePOSTFormSubmission = channel.site._parsePOSTFormSubmission
            self._adapterCache = {}
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

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """twisted.web's, without its form parsing unless the request is a POST (the
        only case where it reads the body); the rest as it does."""
        if command == b"POST" and self._parsePOSTFormSubmission:
            super().requestReceived(command, path, version)
            return
        if self.content is not None:
            self.content.seek(0, 0)
        self.method, self.uri = command, path
        self.clientproto = version
        target, question, query = path.partition(b"?")
        self.path = target
        self.args = parse_qs(query, 1) if question else {}
        self.process()

    def process(self) -> None:
        """Hand the request to the server's root resource (no child traversal: routing
        matches on the whole path, as Caddy does)."""
        self.site = self.channel.site
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
        uri = self.uri
        if uri[:1] != b"/" and (uri[:7].lower() == b"http://" or uri[:8].lower() == b"https://"):
            authority, slash, rest = uri.partition(b"://")[2].partition(b"/")
            self.requestHeaders.setRawHeaders(b"host", [authority])
            self.set_uri(slash + rest if slash else b"/")
        hosts = self.requestHeaders._rawHeaders.get(b"Host") or None
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

    def getHeader(self, key: AnyStr) -> AnyStr | None:
        """twisted.web's, straight from the header dict for a name seen before."""
        if key.__class__ is bytes:
            canonical = _CANONICAL.get(key)
            if canonical is not None:
                values = self.requestHeaders._rawHeaders.get(canonical)
                return values[-1] if values else None  # type: ignore[return-value]
        return super().getHeader(key)

    def setHeader(self, name: AnyStr, value: AnyStr) -> None:
        """twisted.web's, straight into the header dict for a name seen before and a
        value without line breaks (which twisted's would turn into spaces)."""
        if value.__class__ is bytes and b"\r" not in value and b"\n" not in value:  # type: ignore[operator]
            canonical = _CANONICAL.get(name)
            if canonical is not None:
                self.responseHeaders._rawHeaders[canonical] = [value]  # type: ignore[list-item]
                return
        super().setHeader(name, value)

    def set_uri(self, uri: bytes) -> None:
        """Rewrite the request target, keeping ``path``, ``args`` and placeholders in step."""
        self.uri = uri
        path, _, query = uri.partition(b"?")
        self.path = path
        self.decoded_path = decode_path(path)
        # twisted.web's own bytes parser, as for the original target (urllib's rejects
        # non-ASCII bytes, which a rewrite may legitimately produce).
        self.args = parse_qs(query, 1) if query else {}

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
            if not self._lean_head():
                super().write(data)
                return
            if self.method == b"HEAD" or self.code in _NO_BODY_CODES:
                return
        elif self.chunked or self._encoder is not None or self.finished or self._disconnected:
            super().write(data)
            return
        self.sentLength += len(data)
        if data:
            self.channel.write(data)

    def _lean_head(self) -> bool:
        """Send the response head as twisted.web's ``Request.write`` does when nothing of
        its own is asked of it (no encoder, ``lastModified``, ``etag``, cookies or fake
        HEAD, no chunked framing): one status line from a cache, the headers as they
        are. False, having done nothing, when twisted.web's path has to run."""
        if (
            self._encoder is not None
            or self._inFakeHead
            or self.finished
            or self._disconnected
            or self.lastModified is not None
            or self.etag is not None
            or self.cookies
        ):
            return False
        code = self.code
        if (
            b"Content-Length" not in self.responseHeaders._rawHeaders
            and self.clientproto == b"HTTP/1.1"
            and self.method != b"HEAD"
            and code not in _NO_BODY_CODES
        ):
            return False  # chunked: twisted.web frames it
        self.startedWriting = 1
        self.channel.writeHeaders(
            self.clientproto, _status_code(code), self.code_message, self.responseHeaders
        )
        if self.method == b"HEAD" or code in _NO_BODY_CODES:
            self.write = _write_nothing  # type: ignore[method-assign]
        return True

    def finish(self) -> None:
        if not self.startedWriting:
            self._run_header_hooks()
        if (
            self._encoder is not None
            or self._disconnected
            or self.finished
            or self.queued
            or self.producer is not None
        ):
            super().finish()  # twisted.web's checks, warnings and producer clean-up
            return
        # twisted.web's Request.finish and _cleanup in one frame, for the usual case.
        if not self.startedWriting:
            self.write(b"")
        if self.chunked:
            self.channel.write(b"0\r\n\r\n")
        factory = getattr(self.channel, "factory", None)
        if factory is not None:
            factory.log(self)
        self.finished = 1
        self.channel.requestDone(self)
        del self.channel
        content = self.content
        if content is not None:
            with contextlib.suppress(OSError):
                content.close()
            del self.content
        notifications = self.notifications
        if notifications:
            for deferred in notifications:
                deferred.callback(None)
            self.notifications = []

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


def _write_nothing(data: bytes) -> None:
    """``write`` once the head of a body-less answer (HEAD, 204, 304) went, as
    twisted.web's: the body is dropped."""


#: Status codes as the status line spells them (``b"200"``), made once per code.
_STATUS_CODES: dict[int, bytes] = {}


def _status_code(code: int) -> bytes:
    spelled = _STATUS_CODES.get(code)
    if spelled is None:
        spelled = b"%d" % code
        if len(_STATUS_CODES) < 1000:
            _STATUS_CODES[code] = spelled
    return spelled


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
