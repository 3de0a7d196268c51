"""The request object every handler sees: the server's own, with Caddy's state.

Caddy keeps per-request state in the context (vars, regexp captures, the error being
handled, the original URI); here it lives on the request so that handlers, matchers and
placeholders share it without globals.

:class:`CaddyRequest` is not twisted.web's ``Request`` (see its docstring for why and
for what it keeps of that API); :mod:`caddytw.http.interfaces` says which of its members
third-party handlers may rely on.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any, AnyStr, Protocol, TypeAlias
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

# Names taken out of twisted.web.http once: attribute access on that module goes
# through twisted's deprecation proxy, which costs more than the lookup it wraps.
from twisted.web.http import NO_BODY_CODES as _NO_BODY_CODES
from twisted.web.http import RESPONSES as _RESPONSES
from twisted.web.http import Request as _http_request
from twisted.web.http import (
    _getContentFile,
    _getMultiPartArgs,
    _MultiPartParseException,
    _parseContentType,
    datetimeToString,
    parse_qs,
)
from twisted.web.http_headers import Headers, _nameEncoder
from twisted.web.iweb import INonQueuedRequestFactory, IRequest
from zope.interface import implementer, provider

from caddytw.admin import metrics
from caddytw.config.netaddr import host_and_port
from caddytw.http.body import RequestBody, body_from_file
from caddytw.http.dates import date_now
from caddytw.http.errors import status_text

_content_file = _getContentFile

log = Logger()

_PROTO_NAMES = {b"HTTP/2": "HTTP/2.0", b"HTTP/3": "HTTP/3.0"}

#: Bytes searched for in every request as ints (``_CR in value``): a ``bytes`` needle
#: is first tried as an integer, and that failed try (a TypeError made and dropped)
#: cost more than the search itself.
_CR, _LF = b"\r\n"
_PERCENT = b"%"[0]

#: twisted's own cache of canonical header names (``b"content-type"`` ->
#: ``b"Content-Type"``), filled by its encoder with valid names only: a name found here
#: needs neither the check nor the canonicalisation again.
_CANONICAL: dict[bytes | str, bytes] = _nameEncoder._canonicalHeaderCache


#: What a handler's ``render`` returns: the whole body (``bytes``, delivered with its
#: Content-Length by :func:`caddytw.http.dispatch.dispatch`), or ``NOT_DONE_YET`` (an
#: ``int``) when the handler took the answer over.
Answer: TypeAlias = bytes | int

#: twisted.web.server's ``NOT_DONE_YET`` (the same value, so either spelling works),
#: defined here because importing ``twisted.web.server`` brings twisted.spread,
#: twisted.cred, twisted.web's templates and xml.sax along (1.4 MB resident), none of
#: which serving a request needs.
NOT_DONE_YET: int = 1


def _server_request_method(name: str) -> Callable[..., Any]:
    """twisted.web.server.Request's method ``name``, run on a :class:`CaddyRequest`;
    twisted.web.server is imported by the first call (see ``NOT_DONE_YET``)."""

    def method(self: CaddyRequest, *args: Any, **kwargs: Any) -> Any:
        from twisted.web.server import Request

        return getattr(Request, name)(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"twisted.web.server.Request.{name}."
    return method


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


@implementer(IRequest)
@provider(INonQueuedRequestFactory)
class CaddyRequest:
    """A request with Caddy semantics: no default Content-Type, placeholders, vars, errors.

    This is the server's own request class, not twisted.web's ``Request``: every
    protocol (:mod:`caddytw.wire.h1`, :mod:`caddytw.wire.h2`, :mod:`caddytw.wire.h3`,
    and twisted's own ``HTTPChannel`` when the resource tree is embedded in a plain
    ``Site``) builds one per exchange, so it does only what a request here needs, in
    as few steps as it can: attributes in slots, the status line's pieces from caches,
    the head handed to the channel in one call (HTTP/1.1 sends it with the first body
    bytes in one write). It provides twisted.web's ``IRequest`` in full, and the
    members of ``twisted.web.http.Request`` that handlers, producers and protocols use
    (``code``, ``code_message``, ``startedWriting``, ``finished``, ``sentLength``,
    ``chunked``, ``notifyFinish``, ``registerProducer``, ``connectionLost``,
    ``processingFailed``, ...) with the same meaning; the stable part of it for
    third-party handlers is listed in :mod:`caddytw.http.interfaces`.

    Headers are twisted's :class:`~twisted.web.http_headers.Headers`, values kept as
    ``bytes`` (names in twisted's canonical case in ``_rawHeaders``, which the channels
    read directly).
    """

    __slots__ = (
        "__dict__",  # what a handler or plugin hangs on a request (rare: none on the hot path)
        "__weakref__",
        "_body",
        "_content",
        "_disconnected",
        "_encoder",
        "_hooks_ran",
        "_no_body",
        "_on_lost",
        "args",
        "caddy_error",
        "caddy_handler",
        "caddy_vars",
        "channel",
        "chunked",
        "client",
        "clientproto",
        "code",
        "code_message",
        "cookies",
        "decoded_path",
        "error_scopes",
        "finished",
        "first_chunk",
        "header_hooks",
        "host",
        "long_lived",
        "method",
        "metrics_server",
        "notifications",
        "original_method",
        "original_uri",
        "path",
        "placeholder_providers",
        "placeholder_values",
        "producer",
        "proto_override",
        "received_cookies",
        "requestHeaders",
        "responseHeaders",
        "route_groups",
        "sentLength",
        "site",
        "startedWriting",
        "started_at",
        "transport",
        "uri",
    )

    #: Caddy never invents a Content-Type for an empty answer (twisted.web's attribute).
    defaultContentType: bytes | None = None
    #: twisted.web's ``Request`` attributes this class keeps for code written for it;
    #: rarely set, so they live on the class until someone does.
    queued = False
    etag: bytes | None = None
    lastModified: float | None = None
    streamingProducer = False
    appRootURL: bytes | None = None
    #: twisted.web's traversal state: routing matches whole paths, nothing is walked
    #: (empty tuples, so that no request can change another's).
    prepath: Any = ()
    postpath: Any = ()
    sitepath: Any = ()
    _parsePOSTFormSubmission: bool | None = None
    _forceSSL = 0
    _secureSession: Any = None
    _insecureSession: Any = None
    _log = log

    channel: Any
    site: Any
    producer: Any

    def __init__(self, channel: Any, queued: object = None, **kwargs: Any) -> None:
        """``channel`` is the exchange's :class:`caddytw.wire.channel.Channel` (or
        twisted's ``HTTPChannel``); ``queued`` and keywords are accepted for the
        callers written for twisted.web's ``Request`` (requests are never queued since
        Twisted 16.3; ``parsePOSTFormSubmission`` is honoured)."""
        if kwargs.get("parsePOSTFormSubmission") is not None:
            self._parsePOSTFormSubmission = bool(kwargs["parsePOSTFormSubmission"])
        self.channel = channel
        self.client = channel.getPeer()
        self.host = channel.getHost()
        self.transport = channel.transport
        self.site = None
        self.requestHeaders = Headers()
        self.responseHeaders = Headers()
        self.notifications: list[Deferred[None]] = []
        self._on_lost: list[Callable[[Failure], object]] | None = None
        self.received_cookies: dict[bytes, bytes] = {}
        self.cookies: list[bytes] = []
        self._content: Any = None
        self.producer = None
        self.method = b"(no method yet)"
        self.uri = b"(no uri yet)"
        self.path = b""
        self.args: dict[bytes, list[bytes]] = {}
        self.clientproto = b"(no clientproto yet)"
        self.code = 200
        self.code_message = b"OK"
        self.startedWriting = 0
        self.finished = 0
        self.sentLength = 0
        self.chunked = 0
        self._disconnected = False
        self._encoder: Any = None
        self._no_body = False
        self.long_lived = False  # WebSocket tunnels, event streams: not waited for on stop
        self.caddy_handler = ""  # the JSON name of the last handler reached (metrics)
        self.metrics_server: str | None = None
        self.caddy_vars: dict[str, Any] = {}
        self.placeholder_values: dict[str, str] = {}
        self.route_groups: dict[int, set[str]] = {}
        self.error_scopes: list[Handler] = []
        self.header_hooks: list[Callable[[CaddyRequest], None]] = []
        # Lazy placeholders (the ``map`` handler): asked in order after placeholder_values.
        self.placeholder_providers: list[Callable[[CaddyRequest, str], str | None]] = []
        # What the first write carries, for header hooks that decide on it (``encode``).
        self.first_chunk = b""
        self.caddy_error: ErrorInfo | None = None
        self.original_uri = b""
        self.original_method = b""
        self.decoded_path = "/"
        self.started_at = time.time()  # process() sets it again when the head is in
        self.proto_override: str | None = None
        self._hooks_ran = False
        self._body: RequestBody | None = None

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} at 0x{id(self):x} method={_text(self.method)} "
            f"uri={_text(self.uri)} clientproto={_text(self.clientproto)}>"
        )

    @property
    def body(self) -> RequestBody:
        """The request body as it arrives (:mod:`caddytw.http.body`). Our channels set
        it when the head is complete; twisted's ``HTTPChannel`` (an embedding ``Site``)
        collects the body into ``content`` first, and it is read from there."""
        if self._body is None:
            self._body = body_from_file(self.content)
        return self._body

    @body.setter
    def body(self, body: RequestBody) -> None:
        self._body = body

    @property
    def content(self) -> Any:
        """twisted.web's body file: what twisted's ``HTTPChannel`` collected; for our
        channels, whose bodies stream through :attr:`body`, an empty file made when
        first asked for (code written for twisted.web reads it), None once answered."""
        content = self._content
        if content is None and not self.finished and not self._disconnected:
            content = self._content = BytesIO()
        return content

    @content.setter
    def content(self, content: Any) -> None:
        self._content = content

    # -- what a channel calls --------------------------------------------------------

    def gotLength(self, length: int | None) -> None:
        """twisted's ``HTTPChannel``: a body of ``length`` bytes (None: unknown)
        follows; it is collected in ``content``."""
        get_file = getattr(getattr(self.channel, "site", None), "getContentFile", None)
        self.content = get_file(length) if get_file is not None else _content_file(length)

    def handleContentChunk(self, data: bytes) -> None:
        """twisted's ``HTTPChannel``: body bytes for ``content``."""
        self._content.write(data)

    def parseCookies(self) -> None:
        """The request's cookies into ``received_cookies`` (twisted.web's parsing)."""
        values = self.requestHeaders._rawHeaders.get(b"Cookie")
        if not values:
            return
        cookies = self.received_cookies
        for text in values:
            for cookie in text.split(b";"):
                name, equals, value = cookie.lstrip().partition(b"=")
                if equals:
                    cookies[name] = value

    def noLongerQueued(self) -> None:
        """twisted.web's: a no-op since requests are never queued."""

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The head is complete (and, on twisted's ``HTTPChannel``, the body too): set
        the request line and dispatch. A urlencoded or multipart POST body already in
        ``content`` is parsed into ``args``, as twisted.web does (our channels stream
        bodies, so ``content`` is empty there)."""
        self.method = command
        self.uri = path
        self.clientproto = version
        target, question, query = path.partition(b"?")
        self.path = target
        self.args = parse_qs(query, 1) if question else {}
        content = self._content
        if content is not None:
            length = content.tell()
            content.seek(0, 0)
            if command == b"POST" and length and not self._parse_form(content):
                return
        self.process()

    def _parse_form(self, content: Any) -> bool:
        """twisted.web's form parsing of a POST body; False when the body is broken
        (the channel has then answered 400)."""
        wanted = self._parsePOSTFormSubmission
        if wanted is None:
            wanted = getattr(self.channel.site, "_parsePOSTFormSubmission", True)
        if not wanted:
            return True
        ctype = self.requestHeaders.getRawHeaders(b"Content-Type")
        if not ctype:
            return True
        key = _parseContentType(ctype[0])
        if key == b"application/x-www-form-urlencoded":
            self.args.update(parse_qs(content.read(), 1))
        elif key == b"multipart/form-data":
            try:
                self.args.update(_getMultiPartArgs(content.read(), ctype[0]))
            except _MultiPartParseException:
                self.channel._respondToBadRequestAndDisconnect()
                return False
        content.seek(0, 0)
        return True

    def process(self) -> None:
        """Hand the request to the server's root resource (no child traversal: routing
        matches on the whole path, as Caddy does)."""
        self.site = self.channel.site
        self.started_at = now = time.time()
        if self._answered_by_server():
            return
        self.original_uri = self.uri
        self.original_method = self.method
        self.decoded_path = decode_path(self.path)
        # Straight into the Headers' dict (names in twisted's canonical case): these two
        # run for every request; the Date value is made once a second.
        headers = self.responseHeaders._rawHeaders
        headers[b"Server"] = [b"Caddy"]  # a list of its own: addRawHeader appends
        headers[b"Date"] = [date_now(now)]
        try:
            self.render(self.site.resource)
        except BaseException:
            self.processingFailed(Failure())

    def render(self, resource: Any) -> None:
        """Run ``resource`` (an ``IResource``) as twisted.web does: a ``bytes`` answer
        is delivered with its Content-Length (for HEAD, an empty answer keeps the length
        the resource set and a body is dropped), ``NOT_DONE_YET`` means it answers
        itself, anything else is a fault (500)."""
        body = resource.render(self)
        if body is NOT_DONE_YET:
            return
        if not isinstance(body, bytes):
            raise TypeError(f"{resource!r} answered {body!r}, not bytes")
        if body or self.method != b"HEAD":
            self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()

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
        if hosts is None:
            if self.clientproto == b"HTTP/1.1":
                return self._bad_request("missing required Host header")
        elif len(hosts) > 1:
            return self._bad_request("too many Host headers")
        elif not valid_host(hosts[0]):
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
        """The exchange is gone (connection closed, stream reset): nothing more can be
        sent; ``notifyFinish`` Deferreds fail with ``reason``."""
        self._disconnected = True
        self.channel = None
        content = self._content
        if content is not None:
            content.close()
        notifications, self.notifications = self.notifications, []
        for deferred in notifications:
            deferred.errback(reason)
        on_lost, self._on_lost = self._on_lost, None
        if not self.finished:
            for callback in on_lost or ():
                try:
                    callback(reason)
                except Exception:  # as an errback's: logged, the others still run
                    log.failure("when_lost callback failed")
            metrics.request_aborted(self)

    def processingFailed(self, reason: Failure) -> Failure:
        """What escaped the site's root resource. Handlers' errors never get here (the
        root renders them through :func:`caddytw.http.dispatch.dispatch`, which routes
        them to the error routes): this is a fault of the server's own, answered with an
        empty 500, or a cut connection once the answer started."""
        log.failure("request processing failed", failure=reason)
        self.end_with_status(500)
        return reason

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

    def loseConnection(self) -> None:
        """End the exchange now (twisted.web's: through the channel)."""
        if self.channel is not None:
            self.channel.loseConnection()

    # -- the response ----------------------------------------------------------------

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Status lines carry Go's reason phrases, as Caddy's do."""
        self.code = code
        if message is None:
            message = _reason_phrase(code)
        self.code_message = message

    def setHeader(self, name: AnyStr, value: AnyStr) -> None:
        """Set a response header (replacing it): straight into the header dict for a
        name seen before and a value without line breaks, else twisted's checks."""
        if value.__class__ is bytes and _CR not in value and _LF not in value:  # type: ignore[operator]
            canonical = _CANONICAL.get(name)
            if canonical is not None:
                self.responseHeaders._rawHeaders[canonical] = [value]  # type: ignore[list-item]
                return
        self.responseHeaders.setRawHeaders(name, [value])

    def getHeader(self, key: AnyStr) -> AnyStr | None:
        """The last value of a request header (``str`` for a ``str`` name), or None."""
        if key.__class__ is bytes:
            canonical = _CANONICAL.get(key)
            if canonical is not None:
                values = self.requestHeaders._rawHeaders.get(canonical)
                return values[-1] if values else None  # type: ignore[return-value]
        found = self.requestHeaders.getRawHeaders(key)
        return found[-1] if found else None

    def getAllHeaders(self) -> dict[bytes, bytes]:
        """Every request header's last value, by lower-case name (twisted.web's)."""
        return {name.lower(): values[-1] for name, values in self.requestHeaders.getAllRawHeaders()}

    def getCookie(self, key: bytes) -> bytes | None:
        """A cookie the client sent (``parseCookies`` filled them in)."""
        return self.received_cookies.get(key)

    def _run_header_hooks(self) -> None:
        if self._hooks_ran:
            return
        self._hooks_ran = True
        for hook in reversed(self.header_hooks):
            hook(self)

    def write(self, data: bytes) -> None:
        """Send body bytes; the first call sends the head (after the header hooks).
        The body of a HEAD, 204 or 304 answer is dropped; without a Content-Length an
        HTTP/1.1 body is chunked; once the client left, nothing is sent."""
        if not self.startedWriting:
            if self.finished:
                raise RuntimeError(_WRITE_AFTER_FINISH)
            if self._disconnected:
                return
            if not self._hooks_ran:
                self.first_chunk = data
                self._run_header_hooks()
                self.first_chunk = b""
            encoder = self._encoder
            if encoder is not None:
                data = encoder.encode(data)
            self._send_head(data)
            return
        else:
            if self._no_body:
                return
            if self.finished:
                raise RuntimeError(_WRITE_AFTER_FINISH)
            if self._disconnected:
                return
            encoder = self._encoder
            if encoder is not None:
                data = encoder.encode(data)
        self._send_body(data)

    def _send_body(self, data: bytes) -> None:
        """Body bytes to the channel, framed (the head has gone)."""
        if data:
            self.channel.write(self._framed(data))

    def _framed(self, data: bytes) -> bytes:
        """Non-empty body bytes as they go on the wire (a chunk when chunked), counted."""
        self.sentLength += len(data)
        if self.chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    def _send_head(self, body: bytes = b"") -> None:
        """The status line and headers to the channel, once, with the first ``body``
        bytes when there are any (the channel may send both at once: ``write_head``):
        chunked framing for an HTTP/1.1 body without a length, twisted.web's
        ``lastModified``, ``etag`` and cookies when set."""
        self.startedWriting = 1
        code = self.code
        raw = self.responseHeaders._rawHeaders
        if self.method == b"HEAD" or code in _NO_BODY_CODES:
            self._no_body = True
        elif b"Content-Length" not in raw and self.clientproto == b"HTTP/1.1":
            raw[b"Transfer-Encoding"] = [_CHUNKED_VALUE]
            self.chunked = 1
        if self.lastModified is not None or self.etag is not None or self.cookies:
            self._twisted_fields(raw)
        spelled = _STATUS_CODES.get(code)
        if spelled is None:
            spelled = _status_code(code)
        channel = self.channel
        if not body or self._no_body:
            channel.writeHeaders(self.clientproto, spelled, self.code_message, self.responseHeaders)
            return
        body = self._framed(body)
        write_head = getattr(channel, "write_head", None)
        if write_head is not None:
            write_head(self.clientproto, spelled, self.code_message, self.responseHeaders, body)
        else:  # twisted's own HTTPChannel (an embedding Site)
            channel.writeHeaders(self.clientproto, spelled, self.code_message, self.responseHeaders)
            channel.write(body)

    def _twisted_fields(self, raw: dict[bytes, list[bytes]]) -> None:
        """What twisted.web's ``setLastModified``, ``setETag`` and ``addCookie`` asked
        for, into the head."""
        if self.lastModified is not None and b"Last-Modified" not in raw:
            raw[b"Last-Modified"] = [datetimeToString(self.lastModified)]
        if self.etag is not None:
            raw[b"ETag"] = [self.etag]
        if self.cookies:
            raw[b"Set-Cookie"] = list(self.cookies)

    def writeSequence(self, data: list[bytes]) -> None:
        """Several pieces of body, sent as one."""
        self.write(b"".join(data))

    def finish(self) -> None:
        """The answer is complete: send what is owed (the head, a last encoder block,
        the last chunk), log it, tell the channel, fire ``notifyFinish``."""
        if self._disconnected:
            raise RuntimeError(
                "Request.finish called on a request after its connection was lost; "
                "use Request.notifyFinish to keep track of this."
            )
        if self.finished:
            warnings.warn("Warning! request.finish called twice.", stacklevel=2)
            return
        if not self.startedWriting:
            self._run_header_hooks()
        encoder = self._encoder
        if encoder is not None:
            rest = encoder.finish()
            if rest:
                if not self.startedWriting:
                    self._send_head(rest)
                elif not self._no_body:
                    self._send_body(rest)
        channel = self.channel
        if not self.startedWriting:
            self._send_head()
        if self.chunked:
            channel.write(b"0\r\n\r\n")
        factory = getattr(channel, "factory", None)
        if factory is not None:
            factory.log(self)
        self.finished = 1
        if self.producer is not None:
            log.failure(
                "", Failure(RuntimeError(f"Producer was not unregistered for {self.uri!r}"))
            )
            self.unregisterProducer()
        channel.requestDone(self)
        self.channel = None
        self._on_lost = None  # its callbacks usually hold what holds this request
        content = self._content
        if content is not None:
            with contextlib.suppress(OSError):
                content.close()
            self._content = None
        notifications = self.notifications
        if notifications:
            self.notifications = []
            for deferred in notifications:
                deferred.callback(None)

    def notifyFinish(self) -> Deferred[None]:
        """A Deferred that fires (None) when the answer is complete, or fails when the
        exchange is lost first."""
        deferred: Deferred[None] = Deferred()
        self.notifications.append(deferred)
        return deferred

    def when_lost(self, callback: Callable[[Failure], object]) -> None:
        """Call ``callback(reason)`` if the exchange is lost before the answer is
        complete (what ``notifyFinish().addErrback(callback)`` does, without a Deferred
        per request: the proxy asks this of every request it forwards)."""
        if self._on_lost is None:
            self._on_lost = [callback]
        else:
            self._on_lost.append(callback)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let the channel pause and resume ``producer`` (one at a time)."""
        if self.producer is not None:
            raise ValueError(
                f"registering producer {producer} before previous one ({self.producer}) "
                "was unregistered"
            )
        self.streamingProducer = streaming
        self.producer = producer
        self.channel.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.channel.unregisterProducer()
        self.producer = None

    # -- the rest of IRequest: twisted.web's own, used rarely -------------------------

    addCookie = _http_request.addCookie
    setLastModified = _http_request.setLastModified
    setETag = _http_request.setETag
    redirect = _http_request.redirect
    getRequestHostname = _http_request.getRequestHostname
    setHost = _http_request.setHost
    getUser = _http_request.getUser
    getPassword = _http_request.getPassword
    _authorize = _http_request._authorize

    def getSession(self, sessionInterface: Any = None, forceNotSecure: bool = False) -> Any:
        """twisted.web's session (a ``TWISTED_SESSION`` cookie and the site's sessions)."""
        if self.sitepath.__class__ is not list:
            self.sitepath = list(self.sitepath)  # twisted's adds a list to it
        from twisted.web.server import Request

        return Request.getSession(self, sessionInterface, forceNotSecure)  # type: ignore[arg-type]

    URLPath = _server_request_method("URLPath")
    prePathURL = _server_request_method("prePathURL")
    _prePathURL = _server_request_method("_prePathURL")
    rememberRootURL = _server_request_method("rememberRootURL")
    getRootURL = _server_request_method("getRootURL")
    sibLink = _server_request_method("sibLink")
    childLink = _server_request_method("childLink")

    def getClientIP(self) -> str | None:
        """The client's IP address (deprecated in twisted.web for getClientAddress)."""
        return getattr(self.client, "host", None)

    def getClientAddress(self) -> Any:
        return self.client

    def getHost(self) -> Any:
        return self.host

    def isSecure(self) -> bool:
        if self._forceSSL:
            return True
        channel = self.channel
        return False if channel is None else bool(channel.isSecure())

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
        raw = name.encode("latin-1")
        canonical = _CANONICAL.get(raw)
        values: Sequence[bytes] | None
        if canonical is not None:
            values = self.requestHeaders._rawHeaders.get(canonical)
        else:
            values = self.requestHeaders.getRawHeaders(raw)
        if values is None:
            return None
        if len(values) == 1:
            return values[0].decode("latin-1")
        return ",".join(value.decode("latin-1") for value in values)

    def set_uri(self, uri: bytes) -> None:
        """Rewrite the request target, keeping ``path``, ``args`` and placeholders in step."""
        self.uri = uri
        path, _, query = uri.partition(b"?")
        self.path = path
        self.decoded_path = decode_path(path)
        # twisted.web's own bytes parser, as for the original target (urllib's rejects
        # non-ASCII bytes, which a rewrite may legitimately produce).
        self.args = parse_qs(query, 1) if query else {}

    # -- errors ----------------------------------------------------------------------

    @property
    def client_gone(self) -> bool:
        return bool(self._disconnected or self.finished or self.channel is None)


_WRITE_AFTER_FINISH = "Request.write called on a request after Request.finish was called."
_CHUNKED_VALUE = b"chunked"


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def transport_of(request: Any) -> Any:
    """The connection under a request (typed loosely: HTTP/1, HTTP/2 and HTTP/3 differ)."""
    return request.channel.transport


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
def _reason_phrase(code: int) -> bytes:
    """Go's reason phrase for ``code``; twisted.web's for a code Go has none for."""
    return status_text(code).encode("latin-1") or _RESPONSES.get(code, b"Unknown Status")


#: The bytes Go accepts in a Host header (``httpguts.ValidHostHeader``): a name, an IP
#: literal in brackets, a port; never spaces, ``/``, ``@``, quotes or markup.
_HOST_BYTES = (
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&'()*+,-.:;=[]_~"
    + bytes(range(0x80, 0x100))
)


#: A translation table marking each byte: 1 where :data:`_HOST_BYTES` allows it, 0
#: where not (a table made once: deleting the allowed bytes instead built one per call).
_HOST_MARKS = bytes(1 if byte in _HOST_BYTES else 0 for byte in range(256))


def valid_host(host: bytes) -> bool:
    """Whether ``host`` is a Host header value Go's server (so Caddy) accepts (two C
    calls: mark every byte, look for a refused one)."""
    return 0 not in host.translate(_HOST_MARKS)


def decode_path(raw: bytes) -> str:
    """The request path percent-decoded, as Go's ``URL.Path`` (invalid UTF-8 replaced)."""
    if _PERCENT not in raw:
        return raw.decode("utf-8", "surrogateescape")
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
