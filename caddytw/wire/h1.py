"""A lean HTTP/1.1 connection: llhttp parsing (``httptools``), few objects per request.

twisted.web's ``HTTPChannel`` parses line by line in Python, pauses and resumes the
socket around every request and writes headers and body separately; on one core that
caps a 1 KiB answer near 15k requests/s while the reactor alone can do four times that.
This channel keeps twisted's channel contract towards its requests (the methods
``H2Stream`` also provides: ``writeHeaders``, ``write``, ``requestDone``, ``getPeer``,
``getHost``, ``isSecure``, producers, ``loseConnection``) so every handler, producer
and ``notifyFinish`` works unchanged; its requests are
:class:`caddytw.http.request.CaddyRequest` (bodies stream through ``request.body``, no
``content`` file is made for them), but:

- parsing is C (llhttp); request headers go straight into the request's ``Headers``;
- headers written while the request is being dispatched are held and leave in the same
  send as the first body bytes, and so does a head written later with its first body
  bytes (``write_head``: a proxied answer);
- the idle timer is one ``DelayedCall`` per connection, pushed back, never recreated;
- the socket is only paused when pipelined requests pile up.

A request is dispatched as soon as its head is complete; its body streams to the handler
through ``request.body`` (:mod:`caddytw.http.body`): the socket stops being read while
the handler does not take what arrived, ``100 Continue`` is sent when the handler first
asks for the body, a body over the limit stops reading (413, then close), and a body the
handler never read is drained for a little while (:data:`~caddytw.http.body.DRAIN_BYTES`)
or the connection is closed. An Upgrade or CONNECT request with a Content-Length reads
that many bytes as its body before anything else (never as a next request).

Behaviour kept from the old channel: keep-alive, in-order pipelining, ``Expect:
100-continue``, chunked request bodies, ``max_header_bytes`` -> 431, ``read_header_timeout`` and
``read_timeout``, the idle timeout, HEAD, ``Connection: close``, HTTP/1.0, and the
switch to HTTP/2 on ALPN ``h2`` or (when enabled) an h2c connection preface (decided by
:func:`caddytw.wire.negotiate.choose`), done the way Twisted's
``_GenericHTTPChannelProtocol`` does it. The channel is its requests'
:class:`caddytw.wire.channel.Channel`. Upgrade requests (WebSocket) leave the bytes
after the request in ``_dataBuffer`` for whoever takes the connection over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import httptools
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPullProducer, ISSLTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http_headers import _nameEncoder
from zope.interface import implementer

from caddytw.http.body import (
    DEFAULT_LIMIT,
    DRAIN_BYTES,
    DRAIN_SECONDS,
    EMPTY,
    BodyAborted,
    RequestBody,
)
from caddytw.wire.channel import ProtocolName
from caddytw.wire.negotiate import Carried, choose, looks_first
from caddytw.wire.sendnow import send_now

#: How long a connection closed with a body still arriving waits after its FIN before
#: closing, so the client can read the answer before a reset (Go: 500 ms).
LINGER_SECONDS = 1.0
#: A request body must arrive at least this fast (bytes/s, measured over
#: :data:`BODY_RATE_WINDOW` seconds while the server is reading), or the connection is
#: dropped: a body trickled a byte at a time cannot hold a handler (and an upstream
#: connection) forever. Caddy has no such limit; Kestrel's default is the same rate.
BODY_MIN_RATE = 240
BODY_RATE_WINDOW = 10.0
#: Header lines per request (twisted.web's limit too).
MAX_HEADER_COUNT = 500
DEFAULT_MAX_HEADER_BYTES = 1 << 20
#: Complete pipelined requests waiting before the socket stops being read.
PIPELINE_DEPTH = 8
#: Bytes one ``os.sendfile`` turn may push before other connections get the reactor.
#: Within it the sender calls again after a short send instead of waiting for the
#: socket's write wake-up (which comes only once much of the buffer is free): on a
#: fast peer the buffer never runs dry (nginx's ``sendfile_max_chunk`` loop does the
#: same, with the same 2 MiB: 4 and 16 MiB measured no better on a 100 MiB download).
SENDFILE_TURN_BUDGET = 2 << 20

_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE_ANSWERS = {
    400: b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Connection: close\r\nContent-Length: 0\r\n\r\n",
    505: b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
    b"Connection: close\r\nContent-Length: 0\r\n\r\n",
}
#: ``#`` as an int: ``_HASH in uri`` skips the failed integer try a ``bytes`` needle
#: makes first (see ``caddytw.http.request._CR``).
_HASH = b"#"[0]
_canonical = _nameEncoder.encode
#: twisted's cache behind ``_canonical`` (valid names only), asked first: most names
#: a server sees are the same few.
_CANONICAL: dict[bytes | str, bytes] = _nameEncoder._canonicalHeaderCache


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; ``status`` says how to answer."""

    def __init__(self, status: int) -> None:
        self.status = status


class _Parsed:
    """A request whose head is parsed: what ``requestReceived`` needs, kept together,
    and the :class:`~caddytw.http.body.BodySource` of its body."""

    __slots__ = (
        "body",
        "channel",
        "keep_alive",
        "method",
        "request",
        "uri",
        "version",
        "wants_continue",
    )

    def __init__(
        self, channel: FastHTTPChannel, request: Any, method: bytes, uri: bytes, version: bytes
    ) -> None:
        self.channel = channel
        self.request = request
        self.method = method
        self.uri = uri
        self.version = version
        self.keep_alive = True
        self.wants_continue = False
        self.body: RequestBody = EMPTY

    # -- BodySource ------------------------------------------------------------------

    def pause_reading(self) -> None:
        self.channel._set_body_paused(True)

    def resume_reading(self) -> None:
        self.channel._set_body_paused(False)

    def body_wanted(self) -> None:
        if self.wants_continue:
            self.wants_continue = False
            if self.body.received == 0 and self.channel._active is self:
                self.channel._send_continue()

    def body_refused(self) -> None:
        self.keep_alive = False
        self.channel._stop_reading()


class FastHTTPChannel(Protocol):
    """One HTTP/1.1 connection feeding ``site.requestFactory`` requests to the site's
    resource tree (set up by ``Site.buildProtocol``: ``site``, ``factory``,
    ``requestFactory``, ``timeOut``, ``callLater``)."""

    #: :class:`caddytw.wire.channel.Channel`: this connection is its requests' channel.
    protocol_name: ProtocolName = "h1"
    transport: Any
    site: Any = None
    requestFactory: Any = None
    timeOut: float | None = None
    callLater: Any = None
    totalHeadersSize: int = DEFAULT_MAX_HEADER_BYTES
    read_header_timeout: float | None = None
    read_timeout: float | None = None  # from a request's first byte to its last
    #: Accept cleartext HTTP/2 with prior knowledge (the server's ``protocols`` has h2c).
    allow_h2c: bool = False
    #: The largest request body read (``max_request_body`` of the server).
    max_body_bytes: int | None = DEFAULT_LIMIT
    #: Called with this channel when its connection closes (the site that holds it
    #: forgets it: :meth:`caddytw.http.site.CaddySite.forget`).
    on_close: Callable[[FastHTTPChannel], None] | None = None

    def __init__(self) -> None:
        self._parser: Any = _new_parser(self)
        self._url = b""
        self._header_bytes = 0
        self._header_count = 0
        self._headers: dict[bytes, list[bytes]] = {}
        self._current: _Parsed | None = None
        self._queue: deque[_Parsed] = deque()
        self._active: _Parsed | None = None
        self._pending = b""  # response head held until the first body bytes
        self._dispatching = False
        self._in_loop = False
        self._closing = False
        self._broken = 0  # status owed for unparseable input, once queued requests are done
        self._paused = False  # too many pipelined requests
        self._body_paused = False  # a body the handler does not take yet
        self._transport_paused = False
        self._discard = False  # stop parsing: the connection closes after the answers
        self._raw_body: _Parsed | None = None  # an Upgrade/CONNECT request's body
        self._raw_left = 0
        self._drain_call: Any = None
        self._drained = 0
        self._rate_call: Any = None
        self._rate_mark = 0
        self._feeding = b""  # what feed_data is parsing (to tell HTTP/0.9 lines apart)
        self._idle_call: Any = None
        self._header_call: Any = None
        self._read_call: Any = None
        self._sniffed = b""
        self._h2: Any = None  # the HTTP/2 connection after a switch
        #: Bytes received after an upgrade request, for whoever takes the connection.
        self._dataBuffer: list[bytes] = []
        self._upgraded = False
        self._method_override = b""
        self._peer: Any = None
        self._socket: Any = None
        self._host: Any = None
        self._secure = False

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        self._peer = transport.getPeer()
        self._host = transport.getHost()
        self._secure = ISSLTransport.providedBy(transport)
        self._socket = transport.socket if type(transport) is tcp.Server else None
        if self._socket is not None:
            # As Go (so Caddy) does on every connection: a head written on its own (an
            # answer sent later than the dispatch) must not wait for the peer's delayed
            # ACK before its body may leave (Nagle), 40 ms per keep-alive request.
            transport.setTcpNoDelay(True)
        if self.timeOut and self.callLater is not None:
            self._idle_call = self.callLater(self.timeOut, self._idle_timed_out)
        if looks_first(self._secure, self.allow_h2c):
            self.dataReceived = self._first_data  # type: ignore[method-assign]

    def _first_data(self, data: bytes) -> None:
        """Ask :func:`caddytw.wire.negotiate.choose` once per connection what it
        carries, then hand everything received so far on."""
        received = self._sniffed + data
        carried = choose(
            getattr(self.transport, "negotiatedProtocol", None),
            self._secure,
            self.allow_h2c,
            received,
        )
        if carried is Carried.UNDECIDED:
            self._sniffed = received
            return
        self._sniffed = b""
        if carried is Carried.NOTHING:
            self.transport.loseConnection()
        elif carried is Carried.H2:
            self._switch_to_h2(received)
        else:
            del self.dataReceived
            self.dataReceived(received)

    def _switch_to_h2(self, data: bytes) -> None:
        """Hand the connection to ``CaddyH2Connection`` (as Twisted's ALPN switch)."""
        from caddytw.wire.h2 import CaddyH2Connection

        self._cancel_timers()
        reactor = getattr(self.factory, "reactor", None)
        h2: Any = CaddyH2Connection(reactor)
        h2.requestFactory = self.requestFactory
        h2.site = self.site
        h2.factory = self.factory
        h2.timeOut = self.timeOut
        h2.callLater = self.callLater
        self._h2 = h2
        h2.makeConnection(self.transport)
        self.transport.registerProducer(h2, True)
        self.dataReceived = h2.dataReceived  # type: ignore[method-assign]
        h2.dataReceived(data)

    def dataReceived(self, data: bytes) -> None:
        if self._current is not None and self._idle_call is not None:
            # A request arriving in pieces (a slow upload) is activity, not idleness.
            self._idle_call.reset(self.timeOut)
        if self._raw_left:
            data = self._feed_raw_body(data)
        if self._drain_call is not None:
            data = self._drain(data)
        if self._upgraded or self._closing or self._broken or self._discard:
            if self._upgraded and data:
                self._dataBuffer.append(data)
            return
        if not data:
            return
        self._feeding = data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded = True
            rest = self._feed_raw_body(data[upgrade.args[0] :])
            if rest:
                self._dataBuffer.append(rest)
        except httptools.HttpParserCallbackError as error:
            if self._discard:
                return  # a request after a refused body: never read
            cause = error.__context__
            self._reject(cause.status if isinstance(cause, _Reject) else 400)
            return
        except httptools.HttpParserError:
            if _is_pri_request(data) and self._current is None and not self._method_override:
                self._reparse_pri(data)
                return
            self._reject(400)
            return
        if self._active is None:
            self._process_queue()
        elif len(self._queue) >= PIPELINE_DEPTH and not self._paused:
            self._paused = True
            self._update_reading()

    def _feed_raw_body(self, data: bytes) -> bytes:
        """Give an Upgrade/CONNECT request's declared body its bytes (llhttp leaves them
        unparsed); return what follows it."""
        parsed = self._raw_body
        if parsed is None or not self._raw_left:
            return data
        piece, rest = data[: self._raw_left], data[self._raw_left :]
        self._raw_left -= len(piece)
        parsed.body.feed(piece)
        if not self._raw_left:
            self._raw_body = None
            parsed.body.finish()
            self._request_read(parsed)
        return rest

    def _update_reading(self) -> None:
        """Pause the socket while pipelined requests pile up or a body is not taken."""
        want_pause = (self._paused or self._body_paused) and not self._discard
        if want_pause != self._transport_paused and not self._closing:
            self._transport_paused = want_pause
            if want_pause:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def _set_body_paused(self, paused: bool) -> None:
        self._body_paused = paused
        self._update_reading()

    def _stop_reading(self) -> None:
        """A body went over its limit: parse nothing more; close after the answers."""
        self._discard = True
        self._raw_left = 0
        self._update_reading()

    def _reparse_pri(self, data: bytes) -> None:
        """An HTTP/1.1 request with the method ``PRI`` (not the HTTP/2 preface).

        llhttp only accepts ``PRI`` as the start of the preface; Go, and so Caddy,
        serve it as any other method. Parse it as ``PUT`` (same length, same framing)
        and give the request its real method back.
        """
        self._parser = _new_parser(self)
        self._method_override = b"PRI"
        self.dataReceived(b"PUT" + data[3:])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.on_close is not None:
            self.on_close(self)
        self._cancel_timers()
        if self._h2 is not None:
            self._h2.connectionLost(reason)
            return
        seen = []
        for parsed in (self._active, *self._queue, self._current):
            if parsed is not None and parsed not in seen:
                seen.append(parsed)
                request = parsed.request
                parsed.body.abort(BodyAborted("connection lost before the body ended"))
                if not request.finished:
                    request.connectionLost(reason)
        self._active = self._current = None
        self._queue.clear()

    # -- parser callbacks (httptools) ------------------------------------------------

    def on_message_begin(self) -> None:
        if self._discard:
            raise _Reject(400)
        self._url = b""
        self._header_bytes = 0
        self._header_count = 0
        self._headers = {}
        if self.callLater is not None:
            if self.read_header_timeout:
                self._header_call = self.callLater(self.read_header_timeout, self._timed_out)
            if self.read_timeout:
                self._read_call = self.callLater(self.read_timeout, self._timed_out)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > (self.totalHeadersSize or DEFAULT_MAX_HEADER_BYTES):
            raise _Reject(431)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        self._header_count += 1
        if (
            self._header_bytes > (self.totalHeadersSize or DEFAULT_MAX_HEADER_BYTES)
            or self._header_count > MAX_HEADER_COUNT
        ):
            raise _Reject(431)
        if self._current is not None:
            # A chunked body's trailer section: never request headers (they arrive after
            # routing and would let a client smuggle Host, Authorization or
            # X-Forwarded-For past checks). Counted against the limits, then dropped.
            return
        key = _CANONICAL.get(name)
        if key is None:
            key = _canonical(name)
        values = self._headers.get(key)
        if values is None:
            self._headers[key] = [value]
        else:
            values.append(value)

    def on_headers_complete(self) -> None:
        if self._header_call is not None:
            if self._header_call.active():
                self._header_call.cancel()
            self._header_call = None
        parser = self._parser
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            version = self._other_version(parser.get_http_version())
        request = self.requestFactory(self)
        request.requestHeaders._rawHeaders = self._headers
        if b"Cookie" in self._headers:
            request.parseCookies()
        method = parser.get_method()
        if self._method_override:
            method, self._method_override = self._method_override, b""
        uri = self._url
        if _HASH in uri:
            # A request target has no fragment; Go keeps a ``#`` in the path and
            # escapes it when forwarding, so Caddy sends ``%23``: an upstream that drops
            # "fragments" must not see a shorter path than the matchers did.
            path, question, query = uri.partition(b"?")
            uri = path.replace(b"#", b"%23") + question + query
        parsed = _Parsed(
            self,
            request,
            method,
            uri,
            version,
        )
        parsed.keep_alive = parser.should_keep_alive()
        headers = self._headers
        has_body = b"Content-Length" in headers or b"Transfer-Encoding" in headers
        length = _declared_length(headers) if has_body else 0
        if length != 0:
            parsed.body = RequestBody(parsed, length, self.max_body_bytes)
            expect = self._headers.get(b"Expect")
            if expect and expect[0].lower() == b"100-continue" and parsed.version == b"HTTP/1.1":
                parsed.wants_continue = True
        request.body = parsed.body
        if length != 0 and self.callLater is not None:
            self._rate_mark = 0
            self._rate_call = self.callLater(BODY_RATE_WINDOW, self._check_body_rate)
        self._current = parsed
        self._queue.append(parsed)

    def _other_version(self, number: str) -> bytes:
        """HTTP/1.x beyond 1.1 is served as 1.1; HTTP/2.0 and later on an HTTP/1
        connection get 505, an ``HTTP/0.9`` line too, and a line without a version
        (llhttp calls that 0.9 as well) 400: what Go's server answers."""
        if number.startswith("1."):
            return b"HTTP/1.1"
        if number == "0.9" and b" HTTP/0.9\r" not in self._feeding:
            raise _Reject(400)
        raise _Reject(505)

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._current.body.feed(body)

    def on_message_complete(self) -> None:
        parsed = self._current
        assert parsed is not None
        body = parsed.body
        if body is EMPTY:
            self._current = None
            self._request_read(parsed)
            return
        if self._parser.should_upgrade() and body.length is None:
            # llhttp would leave a chunked body unparsed, to be read as requests.
            raise _Reject(400)
        self._current = None
        if self._parser.should_upgrade():
            # llhttp leaves an Upgrade/CONNECT body unparsed: it is read by
            # _feed_raw_body, never parsed as the next request (smuggling).
            self._raw_body = parsed
            self._raw_left = body.length or 0
            return
        body.finish()
        self._request_read(parsed)

    def _request_read(self, parsed: _Parsed) -> None:
        """The last byte of ``parsed`` arrived: its read timer (and a drain) stops."""
        if self._rate_call is not None:
            if self._rate_call.active():
                self._rate_call.cancel()
            self._rate_call = None
        if self._drain_call is not None:
            if self._drain_call.active():
                self._drain_call.cancel()
            self._drain_call = None
        if self._read_call is not None:
            if self._read_call.active():
                self._read_call.cancel()
            self._read_call = None

    # -- dispatch --------------------------------------------------------------------

    def _process_queue(self) -> None:
        """Run queued requests in order, one at a time (never recursively)."""
        if self._in_loop:
            return
        self._in_loop = True
        try:
            while self._active is None and self._queue and not self._closing:
                parsed = self._queue.popleft()
                self._active = parsed
                self._dispatching = True
                try:
                    parsed.request.requestReceived(parsed.method, parsed.uri, parsed.version)
                finally:
                    self._dispatching = False
                    if self._pending and self._active is parsed:
                        self._send(self._pending)
                        self._pending = b""
        finally:
            self._in_loop = False
        if self._broken and self._active is None and not self._queue:
            if not self._closing:
                # Not after a request that closes the connection: what follows it is
                # never read, so it gets no answer either.
                self._closing = True
                self.transport.write(_CLOSE_ANSWERS[self._broken])
            self.transport.loseConnection()
            return
        if self._paused and len(self._queue) < PIPELINE_DEPTH and not self._closing:
            self._paused = False
            self._update_reading()

    def _send_continue(self) -> None:
        """``100 Continue``, unless the answer's head already went."""
        active = self._active
        if active is not None and not active.request.startedWriting and not self._pending:
            self.transport.write(_CONTINUE)

    # -- what code written for twisted's HTTPChannel looks at (graceful drain) -------

    @property
    def requests(self) -> list[Any]:
        """Requests received or being received and not answered yet, oldest first."""
        pending = [p for p in (self._active, *self._queue) if p is not None]
        return [p.request for p in pending]

    @property
    def persistent(self) -> bool:
        """False once the connection is to close after the response in progress."""
        return not self._closing

    @persistent.setter
    def persistent(self, value: bool) -> None:
        if not value:
            self._closing = True

    # -- what twisted.web.http.Request calls -----------------------------------------

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        head = self._head(version, code, reason, headers)
        if self._dispatching:
            self._pending = head
        else:
            self._send(head)

    def write_head(
        self, version: bytes, code: bytes, reason: bytes, headers: Any, body: bytes
    ) -> None:
        """The head and the first body bytes in one send (see :meth:`write`), also for
        an answer written after the dispatch (a proxied one arrives later)."""
        self._pending = self._head(version, code, reason, headers)
        self.write(body)

    def _head(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> bytes:
        """The response head as bytes, with ``Connection`` as keep-alive needs it."""
        parsed = self._active
        raw = headers._rawHeaders
        if parsed is not None:
            body = parsed.body
            if body is not EMPTY and not body.done and not body.started:
                left = None if body.length is None else body.length - body.received
                if (parsed.wants_continue and body.received == 0) or (
                    left is not None and left > DRAIN_BYTES
                ):
                    # Answered without reading a body it never invited or that is too
                    # big to drain: the connection closes after this answer (as Go).
                    parsed.keep_alive = False
            connection = raw.get(b"Connection")
            if connection is not None and b"close" in connection[0].lower():
                parsed.keep_alive = False
            elif self._closing or not parsed.keep_alive:
                parsed.keep_alive = False
                if parsed.version == b"HTTP/1.1":
                    raw[b"Connection"] = [b"close"]
            elif parsed.version != b"HTTP/1.1":
                if b"Content-Length" in raw:
                    raw[b"Connection"] = [b"keep-alive"]
                else:  # an HTTP/1.0 body without a length ends with the connection
                    parsed.keep_alive = False
        parts = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in raw.items():
            for value in values:
                parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        if self._pending:
            if len(data) < 65536:
                data = self._pending + data
            else:
                self._send(self._pending)
            self._pending = b""
        self._send(data)

    def _send(self, data: bytes) -> None:
        """``transport.write``, but straight to the socket when nothing is queued before
        (:func:`caddytw.wire.sendnow.send_now`)."""
        send_now(self.transport, self._socket, data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def requestDone(self, request: Any) -> None:
        parsed = self._active
        if parsed is None or parsed.request is not request:
            return
        if self._pending:
            self._send(self._pending)
            self._pending = b""
        self._active = None
        if self._idle_call is not None:
            self._idle_call.reset(self.timeOut)
        body = parsed.body
        if body is not EMPTY and not body.done and not self._closing and parsed.keep_alive:
            self._drain_unread(parsed)
        if not parsed.keep_alive or self._closing:
            self._close_after_answer(parsed)
            return
        if self._upgraded:
            # The upgrade was refused (no takeover): go on parsing HTTP/1.1.
            self._upgraded = False
            self._parser = _new_parser(self)
            buffered, self._dataBuffer = b"".join(self._dataBuffer), []
            if buffered:
                self.dataReceived(buffered)
                return
        self._process_queue()

    def getPeer(self) -> Any:
        return self._peer

    def getHost(self) -> Any:
        return self._host

    def isSecure(self) -> bool:
        return self._secure

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self._pending:
            self.transport.write(self._pending)
            self._pending = b""
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    def loseConnection(self) -> None:
        if self._pending:
            self.transport.write(self._pending)
            self._pending = b""
        self._closing = True
        self.transport.loseConnection()

    def setTimeout(self, period: float | None) -> None:
        """Twisted's ``TimeoutMixin`` call, for code that takes a connection over."""
        self.timeOut = period
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        if period and self.callLater is not None:
            self._idle_call = self.callLater(period, self._idle_timed_out)

    def _drain_unread(self, parsed: _Parsed) -> None:
        """The handler answered without reading the whole body: read and drop a little
        of it to keep the connection (as Go's server), or give up on keep-alive."""
        body = parsed.body
        body.stopProducing()
        left = None if body.length is None else body.length - body.received
        never_invited = parsed.wants_continue and body.received == 0
        if never_invited or (left is not None and left > DRAIN_BYTES) or self.callLater is None:
            parsed.keep_alive = False
            return
        self._drained = 0
        self._drain_call = self.callLater(DRAIN_SECONDS, self._drain_timed_out)
        self._set_body_paused(False)

    def _drain(self, data: bytes) -> bytes:
        """Count drained bytes (the body's own feed drops them); go on when it ended."""
        self._drained += len(data)
        if self._drained > DRAIN_BYTES + 65536:
            self._drain_timed_out()
            return b""
        return data

    def _drain_timed_out(self) -> None:
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None
        self._closing = True
        self._discard = True
        self.transport.loseConnection()

    def _close_after_answer(self, parsed: _Parsed) -> None:
        """Close once the answer is out. With a body still arriving, send FIN first and
        close for good :data:`LINGER_SECONDS` later (reading nothing more), so the client
        has time to read the answer before unread data makes the kernel send a reset
        (Go's ``closeWriteAndWait``)."""
        self._closing = True
        self._discard = True
        transport = self.transport
        if parsed.body.done or self.callLater is None or type(transport) is not tcp.Server:
            transport.loseConnection()
            return
        if not self._transport_paused:
            self._transport_paused = True
            transport.pauseProducing()
        transport.loseWriteConnection()
        self.callLater(LINGER_SECONDS, transport.loseConnection)

    def _respondToBadRequestAndDisconnect(self) -> None:
        """What ``Request`` calls on an unparseable form body."""
        self._active = None
        self._queue.clear()
        self._reject(400)

    # -- os.sendfile -----------------------------------------------------------------

    def can_sendfile(self) -> bool:
        """Whether :meth:`sendfile` may be used: a plain TCP socket, no TLS in between."""
        return type(self.transport) is tcp.Server and self._h2 is None

    def sendfile(self, fd: int, offset: int, count: int) -> Deferred[int]:
        """Send ``count`` bytes of ``fd`` from ``offset`` straight from the kernel.

        The response head (and anything else already written) leaves first; the
        Deferred fires with the bytes sent, or fails if the file shrank or the
        connection broke. Only valid when :meth:`can_sendfile` says so.
        """
        _set_cork(self.transport, True)
        if self._pending:
            # Straight to the (corked) socket: it leaves with the file's first bytes,
            # and the first send below happens in this same reactor turn.
            self._send(self._pending)
            self._pending = b""
        sender = _FileSender(self.transport, fd, offset, count)
        sender.done.addBoth(_uncork_then, self.transport)
        self.transport.registerProducer(sender, False)  # a pull producer: sends now
        return sender.done

    # -- errors and timers -----------------------------------------------------------

    def _reject(self, status: int) -> None:
        """Stop reading; answer ``status`` and close once the requests before are done."""
        self._broken = status
        for call in (self._header_call, self._read_call):
            if call is not None and call.active():
                call.cancel()
        self._header_call = self._read_call = None
        current = self._current
        self._current = None
        if current is not None:
            current.body.abort(BodyAborted("malformed request body"))
            if current is self._active:
                # Its handler runs and learns from the body; no second answer.
                current.keep_alive = False
                self._broken = 0
                self._discard = True
            elif current in self._queue:
                self._queue.remove(current)
        self._process_queue()

    def _timed_out(self) -> None:
        """A request's head or whole took longer than allowed (slowloris): drop it."""
        for call in (self._header_call, self._read_call):
            if call is not None and call.active():
                call.cancel()
        self._header_call = self._read_call = None
        self._closing = True
        self.transport.loseConnection()

    def _check_body_rate(self) -> None:
        """Drop a connection whose body arrives slower than :data:`BODY_MIN_RATE`
        (time the server stopped reading, or a client waits for ``100 Continue``, does
        not count)."""
        self._rate_call = None
        parsed = self._current or self._raw_body
        if parsed is None or self._closing:
            return
        received = parsed.body.received
        waiting = self._transport_paused or parsed.wants_continue  # for us, not the client
        if not waiting and received - self._rate_mark < (BODY_MIN_RATE * BODY_RATE_WINDOW):
            parsed.body.abort(BodyAborted("request body too slow"))
            self._timed_out()
            return
        self._rate_mark = received
        self._rate_call = self.callLater(BODY_RATE_WINDOW, self._check_body_rate)

    def _idle_timed_out(self) -> None:
        self._idle_call = None
        if self._active is not None or self._queue:
            # Busy is not idle: look again a full period later.
            if self.timeOut and self.callLater is not None:
                self._idle_call = self.callLater(self.timeOut, self._idle_timed_out)
            return
        self._closing = True
        self.transport.loseConnection()

    def _cancel_timers(self) -> None:
        for call in (self._idle_call, self._header_call, self._read_call, self._rate_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._header_call = self._read_call = self._rate_call = None


def _new_parser(channel: FastHTTPChannel) -> Any:
    """An llhttp request parser that lets any ``HTTP/x.y`` through, so the channel can
    answer versions as Go does (1.x served, 0.9 and 2.0+ refused) rather than 400."""
    parser = httptools.HttpRequestParser(channel)
    parser.set_dangerous_leniencies(lenient_version=True)
    return parser


def _is_pri_request(data: bytes) -> bool:
    """A request line with the method PRI that is not the HTTP/2 preface's."""
    return data.startswith(b"PRI ") and not data.startswith(b"PRI * HTTP/2")


def _declared_length(headers: dict[bytes, list[bytes]]) -> int | None:
    """The body's size from the head: Content-Length, None when chunked, else 0
    (llhttp has already refused conflicting or malformed framing)."""
    if b"Transfer-Encoding" in headers:
        return None
    length = headers.get(b"Content-Length")
    if length is None:
        return 0
    try:
        return int(length[0])
    except ValueError:
        return None


#: ``TCP_CORK`` where the system has it (Linux), else None: files then go uncorked.
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


def _set_cork(transport: Any, on: bool) -> None:
    """Hold (or release) partial TCP segments while a file is sent, as nginx's
    ``tcp_nopush``: the response head shares a segment with the file's first bytes, and
    every segment is full. Releasing pushes the tail at once. A socket already closed,
    or a system without ``TCP_CORK``, just sends as it would have."""
    if _TCP_CORK is None:
        return
    with contextlib.suppress(OSError):
        transport.socket.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1 if on else 0)


def _uncork_then(result: Any, transport: Any) -> Any:
    """Release the cork as soon as the file is out (before the next response)."""
    _set_cork(transport, False)
    return result


@implementer(IPullProducer)
class _FileSender:
    """Pull producer driving ``os.sendfile`` on a TCP transport.

    The transport asks for more (``resumeProducing``) when its own buffer is empty. A
    turn keeps calling ``os.sendfile`` while the socket takes bytes, up to
    :data:`SENDFILE_TURN_BUDGET`: the reader drains the buffer on another core while
    we send, so a short send is usually followed by room at once, and waiting for the
    write wake-up instead lets the buffer run dry. Only a full socket (``EAGAIN``) or
    a spent budget re-arms the transport's write watch.
    """

    def __init__(self, transport: Any, fd: int, offset: int, count: int) -> None:
        self.transport = transport
        self.fd = fd
        self.offset = offset
        self.left = count
        self.sent = 0
        self.done: Deferred[int] = Deferred()

    def resumeProducing(self) -> None:
        transport = self.transport
        if self.done.called:
            return
        if len(transport.dataBuffer) > transport.offset or transport._tempDataLen:
            return  # the transport calls again once its buffer is out
        socket_fd = transport.fileno()
        budget = SENDFILE_TURN_BUDGET
        while budget > 0:
            try:
                sent = os.sendfile(socket_fd, self.fd, self.offset, min(self.left, budget))
            except BlockingIOError:
                break
            except OSError as error:
                self._end(Failure(error))
                return
            if sent == 0:
                self._end(Failure(OSError("file ended before the promised length")))
                return
            self.offset += sent
            self.left -= sent
            self.sent += sent
            budget -= sent
            if self.left <= 0:
                self._end(None)
                return
        transport.startWriting()

    def stopProducing(self) -> None:
        if not self.done.called:
            self.done.errback(Failure(ConnectionError("connection lost during sendfile")))

    def _end(self, failure: Failure | None) -> None:
        self.transport.unregisterProducer()
        if failure is None:
            self.done.callback(self.sent)
        else:
            self.done.errback(failure)


def fast_channel_protocol(h2c: bool = False) -> FastHTTPChannel:
    """A new connection protocol (``Site.protocol``); ``h2c`` accepts cleartext HTTP/2."""
    channel = FastHTTPChannel()
    channel.allow_h2c = h2c
    return channel
