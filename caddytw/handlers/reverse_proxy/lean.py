"""A lean HTTP/1.1 client for upstreams (plain TCP or TLS): the proxy's hot path.

Profiling the 1 KiB proxy case showed most of the handler's CPU in
``twisted.web.client.Agent``: per-request Agent and Request objects, a chain of Deferreds
through the connection pool, a line-by-line response parser and several header copies.
This client does the same job for the common case with less: one request head written
in one call, responses parsed by ``httptools`` (llhttp), persistent connections kept in a
small pool keyed by address, and no Deferred per request: the handler's attempt is the
exchange's :class:`Receiver` and is called directly (``request`` wraps the same in a
Deferred for callers that want one). The response head is handed over once the data
that carried it has been parsed, so a small answer arrives whole: ``complete_body``
then gives its body without a body protocol.

What the handler sees is the subset of Agent's ``IResponse`` it uses: ``code``,
``headers`` (including ``Connection``, so the fields it names can be stripped),
``length`` and ``deliverBody(protocol)``. The body protocol gets an ``IPushProducer``
transport, so the client request can pause the upstream socket (backpressure), and
``stopProducing`` drops the connection (client gone, read timeout). A pooled connection
that turns out to be stale (closed before any byte of the answer) is retried once on a
new connection for idempotent requests without a body, as Agent's pool does. TLS
upstreams use it too (the connector's endpoints wrap TLS), so the response head limit
holds for them as well; Agent is left to active health checks.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from typing import Protocol as TypingProtocol

from httptools import HttpParserError, HttpResponseParser
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

# twisted.web.client's ResponseDone, where it is defined: the end of a body, as Agent's
# responses signal it too, without importing the Agent module (see :mod:`.agent`).
from twisted.web._newclient import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH
from zope.interface import implementer

from caddytw.handlers.reverse_proxy.headers import add_raw_fields
from caddytw.wire.sendnow import plain_socket, send_now

#: Seconds an idle connection beyond the per-host limit is kept (see ``release``).
SURPLUS_GRACE = 1.0
#: Methods a stale pooled connection may be retried for (Agent's list).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"})
#: Each byte marked 0 where a request target may not have it (controls, space, DEL),
#: else 1: ``0 in target.translate(_TARGET_MARKS)`` is the check, a few times cheaper
#: than a regular expression search on every proxied request.
_TARGET_MARKS = bytes(0 if byte <= 0x20 or byte == 0x7F else 1 for byte in range(256))
_BAD_METHOD = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
#: Methods already found valid (the first few seen): no regular expression for them.
_GOOD_METHODS: set[bytes] = set()


class UpstreamResponseError(Exception):
    """The upstream's answer was not HTTP/1.1, or its connection ended too early."""


class LeanResponse:
    """The response head; ``deliverBody`` starts the body's delivery (the FastCGI
    transport's connections deliver theirs through it too), or ``complete_body`` takes
    a body that already arrived whole."""

    __slots__ = ("_connection", "code", "headers", "length")

    def __init__(self, code: int, headers: Headers, length: Any, connection: Any):
        self.code = code
        self.headers = headers
        self.length = length
        self._connection = connection

    def deliverBody(self, protocol: Any) -> None:
        self._connection.deliver_body(protocol)

    def complete_body(self) -> bytes | None:
        """The whole body when it arrived with the head (the exchange is then over and
        the connection back in its pool); None when it has to be delivered."""
        return self._connection.complete_body()  # type: ignore[no-any-return]


class Receiver(TypingProtocol):
    """Who waits for an exchange's answer: told the connection it goes out on (when
    there is one), then exactly one of the answer or the failure."""

    def upstream_connected(self, connection: Any) -> None: ...

    def upstream_answered(self, response: LeanResponse) -> None: ...

    def upstream_failed(self, reason: Failure) -> None: ...


class DeferredReceiver:
    """A :class:`Receiver` that fires a Deferred: the clients' ``request`` methods, for
    callers that want one."""

    __slots__ = ("deferred", "on_connection")

    def __init__(self, deferred: Deferred[LeanResponse], on_connection: Any) -> None:
        self.deferred = deferred
        self.on_connection = on_connection

    def upstream_connected(self, connection: Any) -> None:
        if self.on_connection is not None:
            self.on_connection(connection)

    def upstream_answered(self, response: LeanResponse) -> None:
        self.deferred.callback(response)

    def upstream_failed(self, reason: Failure) -> None:
        self.deferred.errback(reason)


@implementer(IPushProducer)
class BodyTransport:
    """The body protocol's view of the connection, valid for one response only (a
    late pause/resume from the client side must not touch the next request's reads).
    ``connection`` offers ``pause``, ``resume`` and ``abort``."""

    __slots__ = ("active", "connection")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.active = True

    def pauseProducing(self) -> None:
        if self.active:
            self.connection.pause()

    def resumeProducing(self) -> None:
        if self.active:
            self.connection.resume()

    def stopProducing(self) -> None:
        if self.active:
            self.connection.abort()


class _Exchange:
    """One request: what to write, and who waits for the response head."""

    __slots__ = ("connection", "dial", "done", "head", "key", "method", "producer", "receiver")

    def __init__(
        self, key: tuple[str, int], method: bytes, head: bytes, producer: Any, receiver: Receiver
    ) -> None:
        self.key = key
        self.method = method
        self.head = head
        self.producer = producer
        self.receiver = receiver
        self.done = False
        self.dial: Deferred[Any] | None = None
        self.connection: LeanConnection | None = None

    def answer(self, response: LeanResponse) -> None:
        if not self.done:
            self.done = True
            self.receiver.upstream_answered(response)

    def fail(self, reason: Failure) -> None:
        if not self.done:
            self.done = True
            self.receiver.upstream_failed(reason)

    def cancel(self) -> None:
        """Cancelled before the head arrived: stop dialing, or drop the connection (its
        state is unknown now), as Agent does; the receiver hears of a failure (the
        dial's, or :class:`CancelledError`) as a cancelled Deferred would tell it."""
        if self.done:
            return
        if self.dial is not None:
            self.dial.cancel()
        if self.connection is not None:
            self.connection.abort()
        self.fail(Failure(CancelledError()))


class PausableConnection(Protocol):
    """An upstream connection's side of a response body: handing it to the body
    protocol (with what arrived before), ending it, and pausing and resuming reads
    once each (the body protocol's :class:`BodyTransport` and the end of an exchange
    may both ask). Shared by the HTTP and FastCGI clients."""

    paused = False
    lost = False
    body: Any = None
    body_transport: BodyTransport | None = None
    pending: list[bytes]

    def _start_body(self, protocol: Any) -> None:
        self.body = protocol
        self.body_transport = BodyTransport(self)
        protocol.makeConnection(self.body_transport)
        pending, self.pending = self.pending, []
        for data in pending:
            protocol.dataReceived(data)

    def _end_body(self, reason: Failure) -> None:
        body, self.body = self.body, None
        if self.body_transport is not None:
            self.body_transport.active = False
        if body is not None:
            body.connectionLost(reason)

    def complete_body(self) -> bytes | None:
        """A body that needs no delivery (see :meth:`LeanResponse.complete_body`):
        none here, the body is always delivered."""
        return None

    def pause(self) -> None:
        if not self.paused and not self.lost:
            self.paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resume(self) -> None:
        if self.paused and not self.lost:
            self.paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]


class LeanConnection(PausableConnection):
    """One persistent connection to an upstream, serving one exchange at a time."""

    def __init__(self, client: LeanClient, key: tuple[str, int]) -> None:
        self.client = client
        self.key = key
        self.parser = HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.served = 0
        #: The idle timer (see ``LeanClient.release``), and when an idle connection
        #: closes (None while it serves an exchange).
        self.idle_call: Any = None
        self.idle_until: float | None = None
        self.lost = False
        self.in_use = False
        #: The socket under a plain TCP or Unix transport (None under TLS).
        self.socket: Any = None
        self._reset()

    def connectionMade(self) -> None:
        self.socket = plain_socket(self.transport)

    def _reset(self) -> None:
        self.received = False
        self.head_bytes = 0  # received before the response head was complete
        self.head_done = False
        #: The head parsed, handed over once the data that carried it is parsed.
        self.response: LeanResponse | None = None
        self.delivered = False
        self.fields: list[tuple[bytes, bytes]] = []
        self.informational = False
        self.head_only = False
        self.until_eof = False
        self.message_done = False
        self.upload_done = True
        self.keep_alive = False
        self.body: Any = None
        self.body_transport: BodyTransport | None = None
        self.pending: list[bytes] = []
        self.paused = False
        self.failed = False

    # -- sending ---------------------------------------------------------------------

    def send(self, exchange: _Exchange) -> None:
        self._reset()
        self.exchange = exchange
        self.in_use = True
        exchange.dial = None
        exchange.connection = self
        self.served += 1
        exchange.receiver.upstream_connected(self)
        self.head_only = exchange.method == b"HEAD"
        transport: Any = self.transport
        send_now(transport, self.socket, exchange.head)  # at once: no write event
        producer = exchange.producer
        if producer is not None:
            self.upload_done = False
            transport.registerProducer(producer, True)
            producer.startProducing(transport).addCallbacks(self._uploaded, self._upload_failed)

    def _uploaded(self, _: Any) -> None:
        self.upload_done = True
        if self.transport is not None and not self.lost:
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
        self._maybe_settle()

    def _upload_failed(self, reason: Failure) -> None:
        self.upload_done = True
        if self.transport is not None and not self.lost:
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
        self._fail(reason)

    # -- receiving -------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if not self.in_use:
            self.abort()  # an idle connection has nothing to say
            return
        self.received = True
        if not self.head_done:
            # A hostile upstream's endless head: 502 at the limit, memory flat (Go's
            # MaxResponseHeaderBytes, so Caddy's max_response_header_size).
            self.head_bytes += len(data)
            if self.head_bytes > self.client.max_head and not self.failed:
                self._fail(Failure(UpstreamResponseError("response head too large")))
                return
        try:
            self.parser.feed_data(data)
        except HttpParserError as error:
            if self.head_only and self.message_done:
                self.parser = HttpResponseParser(self)  # a HEAD answer has no body
                self._hand_over()
                return
            # A head before the error is still the answer (its body fails); the
            # connection is not pooled meanwhile, so no other exchange can be on it.
            self.keep_alive = False
            self._hand_over()
            if not self.failed:
                self._fail(Failure(UpstreamResponseError(f"malformed response: {error}")))
            return
        if self.response is not None:
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the parsed head to the exchange's receiver, after the body that came
        with it was parsed too (so a small answer is complete when it is received)."""
        response, self.response = self.response, None
        if response is None:
            return
        exchange, self.exchange = self.exchange, None
        if exchange is None or exchange.done:
            self.abort()  # cancelled meanwhile
            return
        exchange.connection = None
        exchange.answer(response)

    def on_message_begin(self) -> None:
        self.fields = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value.strip(b" \t")))  # llhttp keeps trailing OWS

    def on_headers_complete(self) -> None:
        code = self.parser.get_status_code()
        if 100 <= code < 200:
            if code == 101:
                raise UpstreamResponseError("unexpected 101 Switching Protocols")
            self.informational = True  # 100 Continue and friends: wait for the answer
            return
        self.head_done = True
        headers = Headers()
        add_raw_fields(headers, self.fields)
        raw = headers._rawHeaders
        length: Any = UNKNOWN_LENGTH
        chunked = b"Transfer-Encoding" in raw
        declared = raw.get(b"Content-Length")
        if declared is not None:
            length = int(declared[-1])
        if self.head_only or code in (204, 304):
            length = 0
        elif chunked:
            length = UNKNOWN_LENGTH
        self.until_eof = length is UNKNOWN_LENGTH and not chunked
        self.keep_alive = self.client.persistent and self.parser.should_keep_alive()
        self.response = LeanResponse(code, headers, length, self)
        if self.head_only:
            self.on_message_complete()
            raise _HeadAnswered()

    def on_body(self, data: bytes) -> None:
        if self.body is not None:
            self.body.dataReceived(data)
        else:
            self.pending.append(data)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        if self.message_done:
            return
        self.message_done = True
        if self.body is not None:
            self._end_body(Failure(ResponseDone()))
        self._maybe_settle()

    def deliver_body(self, protocol: Any) -> None:
        self.delivered = True
        self._start_body(protocol)
        if self.message_done:
            self._end_body(Failure(ResponseDone()))
        elif self.lost:
            self._end_body(Failure(UpstreamResponseError("upstream closed mid-body")))
        self._maybe_settle()

    def complete_body(self) -> bytes | None:
        if not self.message_done or self.delivered or self.body is not None:
            return None
        self.delivered = True
        pending, self.pending = self.pending, []
        self._maybe_settle()
        return b"".join(pending)

    def _maybe_settle(self) -> None:
        """Once the exchange is over both ways (and the body was handed over): pool the
        connection or close it."""
        if not (self.in_use and self.message_done and self.upload_done and self.delivered):
            return
        self.in_use = False
        if self.paused:
            self.resume()
        if self.keep_alive and not self.lost and self.body is None:
            self.client.release(self)
        elif not self.lost:
            self.transport.loseConnection()  # type: ignore[union-attr]

    # -- flow control and failure ----------------------------------------------------

    def abort(self) -> None:
        self.keep_alive = False
        if not self.lost and self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _fail(self, reason: Failure) -> None:
        self.failed = True
        self.in_use = False
        exchange, self.exchange = self.exchange, None
        self.abort()
        if exchange is not None and not exchange.done:
            exchange.fail(reason)
        elif self.body is not None:
            self._end_body(reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost = True
        self.in_use = False
        self.client.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None and not exchange.done:
            stale = self.served > 1 and not self.received
            if stale and exchange.producer is None and exchange.method in IDEMPOTENT:
                self.client.dial(exchange)  # a stale pooled connection: once more, fresh
                return
            message = "upstream closed the connection before answering"
            exchange.fail(Failure(UpstreamResponseError(message)))
            return
        if self.message_done:
            return
        if self.until_eof:
            self.message_done = True
            if self.body is not None:
                self._end_body(Failure(PotentialDataLoss()))
            return
        if self.body is not None:
            self._end_body(Failure(UpstreamResponseError("upstream closed mid-body")))


class _HeadAnswered(Exception):
    """Stops the parser after a HEAD answer's head (llhttp would wait for a body)."""


class ConnectionFactory(Factory):
    """Makes ``protocol(client, key)`` for one dial to an upstream address (the HTTP/2
    client's connections are made the same way)."""

    noisy = False

    def __init__(self, client: Any, key: tuple[str, int], protocol: Any) -> None:
        self.client = client
        self.key = key
        self.make = protocol

    def buildProtocol(self, addr: Any) -> Any:
        return self.make(self.client, self.key)


@functools.lru_cache(maxsize=256)
def authority(host: str, port: int) -> bytes:
    """The ``Host`` an upstream gets when the request brought none: ``host:port``, or
    ``localhost`` for a unix socket (``host`` is then its path). Cached: the IDNA codec
    is slow and the upstreams are few."""
    if port == 0:
        return b"localhost"
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode("idna")


class LeanClient:
    """Idle connections per upstream address, and the requests that use them.

    ``connector`` is the handler's :class:`~.transport.UpstreamConnector`:
    its endpoints dial (with ``dial_timeout``, TCP_NODELAY and keep-alive probes, and
    :class:`~.transport.DialError` on failure) and its keep-alive settings
    bound the pool.
    """

    def __init__(self, connector: Any, reactor: Any) -> None:
        keepalive = connector.config.keepalive
        self.connector = connector
        self.reactor = reactor
        self.persistent = bool(keepalive.enabled)
        self.max_head = connector.config.max_response_header_size
        self.max_idle = max(1, keepalive.max_idle_conns_per_host)
        self.idle_timeout = keepalive.idle_timeout or 120.0
        self.idle: dict[tuple[str, int], list[LeanConnection]] = {}

    def head(
        self, method: bytes, target: bytes, headers: Headers, host: bytes, length: int
    ) -> bytes:
        """The request head as bytes, framed the way Agent frames it."""
        if method not in _GOOD_METHODS:
            if _BAD_METHOD.search(method) or not method:
                raise ValueError(f"invalid method {method!r}")
            if len(_GOOD_METHODS) < 64:
                _GOOD_METHODS.add(method)
        if not target.startswith(b"/"):
            target = b"/" + target
        if 0 in target.translate(_TARGET_MARKS):
            raise ValueError(f"invalid request target {target!r}")
        parts = [method, b" ", target, b" HTTP/1.1\r\n"]
        if not self.persistent:
            parts.append(b"Connection: close\r\n")
        if length:
            parts.append(b"Content-Length: %d\r\n" % length)
        elif method in (b"PUT", b"POST"):
            parts.append(b"Content-Length: 0\r\n")
        raw = headers._rawHeaders  # canonical names, values free of line breaks
        if b"Host" not in raw:
            parts += (b"Host: ", host, b"\r\n")
        for name, values in raw.items():
            for value in values:
                parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def request(
        self,
        host: str,
        port: int,
        method: bytes,
        target: bytes,
        headers: Headers,
        producer: Any = None,
        on_connection: Any = None,
    ) -> Deferred[LeanResponse]:
        """:meth:`send` with a Deferred for the answer (cancelling it cancels the
        exchange)."""
        exchanges: list[_Exchange] = []
        deferred: Deferred[LeanResponse] = Deferred(lambda _: exchanges[0].cancel())
        receiver = DeferredReceiver(deferred, on_connection)
        exchanges.append(self.send(host, port, method, target, headers, producer, receiver))
        return deferred

    def send(
        self,
        host: str,
        port: int,
        method: bytes,
        target: bytes,
        headers: Headers,
        producer: Any,
        receiver: Receiver,
    ) -> _Exchange:
        """Start one exchange; ``receiver`` hears how it goes. The result's ``cancel``
        abandons it (the receiver then hears of a failure)."""
        length = producer.length if producer is not None else 0
        head = self.head(method, target, headers, authority(host, port), length)
        exchange = _Exchange((host, port), method, head, producer, receiver)
        idle = self.idle.get(exchange.key)
        if idle:
            connection = idle.pop()
            connection.idle_until = None  # its idle timer, if one runs, lets it be
            connection.send(exchange)
        else:
            self.dial(exchange)
        return exchange

    def dial(self, exchange: _Exchange) -> None:
        host, port = exchange.key
        endpoint = self.connector.endpoint(host, port)
        dial: Deferred[Any] = endpoint.connect(
            ConnectionFactory(self, exchange.key, LeanConnection)
        )
        exchange.dial = dial

        def connected(connection: LeanConnection) -> None:
            if exchange.done:  # cancelled meanwhile
                connection.transport.loseConnection()  # type: ignore[union-attr]
                return
            connection.send(exchange)

        def failed(reason: Failure) -> None:
            exchange.dial = None
            exchange.fail(reason)

        dial.addCallbacks(connected, failed)

    def release(self, connection: LeanConnection) -> None:
        """Back to the idle pool. Beyond ``max_idle_conns_per_host`` a connection is kept
        only :data:`SURPLUS_GRACE` seconds: this reactor finishes upstream answers in
        bursts (every response readable in one turn), and closing the surplus at once
        made the very next burst of requests dial it again (a connect, an accept and a
        TIME_WAIT per surplus request; half the proxy's throughput at 50 clients and
        the default 32). The pool is LIFO, so a surplus connection is reused first."""
        idle = self.idle.setdefault(connection.key, [])
        timeout = self.idle_timeout
        if len(idle) >= self.max_idle:
            timeout = min(timeout, SURPLUS_GRACE)
        idle.append(connection)
        # One timer per connection, moved only when it would fire too late: arming and
        # cancelling a timer for every request showed in the proxy's profile.
        deadline = self.reactor.seconds() + timeout
        connection.idle_until = deadline
        call = connection.idle_call
        if call is None or call.getTime() > deadline:
            if call is not None:
                call.cancel()
            connection.idle_call = self.reactor.callLater(timeout, self._idle_check, connection)

    def _idle_check(self, connection: LeanConnection) -> None:
        """A connection's idle timer: close it when it stayed idle until its deadline,
        wait on when it was used and pooled again meanwhile (busy: armed on release)."""
        connection.idle_call = None
        until = connection.idle_until
        if until is None:
            return
        left = until - self.reactor.seconds()
        if left > 0:
            connection.idle_call = self.reactor.callLater(left, self._idle_check, connection)
        else:
            connection.abort()

    def forget(self, connection: LeanConnection) -> None:
        if connection.idle_call is not None and connection.idle_call.active():
            connection.idle_call.cancel()
        connection.idle_call = None
        connection.idle_until = None
        idle = self.idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        """Close the idle connections (busy ones end with their exchange)."""
        for idle in list(self.idle.values()):
            for connection in list(idle):
                connection.abort()
        self.idle.clear()
