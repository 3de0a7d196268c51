"""HTTP/2 to upstreams: cleartext with prior knowledge (``transport.versions: ["h2c"]``,
what ``reverse_proxy h2c://host:port`` adapts to), as Caddy's h2c transport.

One connection per upstream address carries every request to it as a stream (the
``h2`` library's state machine; the same one the server side uses). What the handler
gets is what the HTTP/1.1 :class:`~.lean.LeanClient` gives it: a ``LeanResponse`` whose
``deliverBody`` hands the body to a protocol with a push-producer transport. Pausing
that transport stops acknowledging the stream's data, so HTTP/2 flow control stops the
upstream (backpressure, per stream); ``stopProducing`` resets the stream. Request
bodies go out as DATA frames within the peer's windows; a body producer is paused
while the window is closed and resumed by the peer's WINDOW_UPDATE.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from caddytw.handlers.reverse_proxy.lean import (
    BodyTransport,
    ConnectionFactory,
    LeanResponse,
    UpstreamResponseError,
    authority,
)

#: Fields HTTP/2 forbids (RFC 9113 8.2.2); the proxy strips most hop-by-hop ones already.
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"}
)


class H2Stream:
    """One request/response exchange on an :class:`H2UpstreamConnection`."""

    def __init__(
        self, connection: H2UpstreamConnection, stream_id: int, deferred: Deferred[Any]
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.deferred = deferred
        self.body: Any = None
        self.body_transport: BodyTransport | None = None
        self.pending: list[bytes] = []
        self.unacknowledged: list[int] = []
        self.paused = False
        self.ended: Failure | None = None
        self.producer: Any = None
        self.outgoing = bytearray()
        self.upload_done = True
        self.upload_finished = False

    # -- the body protocol's side (BodyTransport calls these) ---------------------------

    def deliver_body(self, protocol: Any) -> None:
        self.body = protocol
        self.body_transport = BodyTransport(self)
        protocol.makeConnection(self.body_transport)
        pending, self.pending = self.pending, []
        for data in pending:
            protocol.dataReceived(data)
        if self.ended is not None:
            self._end_body(self.ended)

    def complete_body(self) -> bytes | None:
        """Always delivered (see :meth:`~.lean.LeanResponse.complete_body`)."""
        return None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            for size in self.unacknowledged:
                self.connection.acknowledge(self.stream_id, size)
            self.unacknowledged = []

    def abort(self) -> None:
        self.connection.reset(self.stream_id)
        self._finish(Failure(UpstreamResponseError("stream reset by the proxy")))

    # -- events from the connection ----------------------------------------------------

    def response(self, headers: list[tuple[bytes, bytes]]) -> None:
        code = 0
        fields = Headers()
        for name, value in headers:
            if name == b":status":
                code = int(value)
            elif not name.startswith(b":"):
                fields.addRawHeader(name, value)
        if 100 <= code < 200:
            return  # interim (100 Continue, 103 Early Hints): the real answer follows
        length: Any = UNKNOWN_LENGTH
        declared = fields.getRawHeaders(b"content-length")
        if declared and declared[0].isdigit():
            length = int(declared[0])
        if not self.deferred.called:
            self.deferred.callback(LeanResponse(code, fields, length, self))

    def data(self, data: bytes, flow: int) -> None:
        if self.paused:
            self.unacknowledged.append(flow)
        else:
            self.connection.acknowledge(self.stream_id, flow)
        if self.body is not None:
            self.body.dataReceived(data)
        else:
            self.pending.append(data)

    def _finish(self, reason: Failure) -> None:
        self.connection.streams.pop(self.stream_id, None)
        self._stop_upload()
        if not self.deferred.called:
            self.deferred.errback(reason)
            return
        if self.ended is None:
            self.ended = reason
            if self.body is not None:
                self._end_body(reason)
        self.connection.stream_closed()

    def _end_body(self, reason: Failure) -> None:
        body, self.body = self.body, None
        if self.body_transport is not None:
            self.body_transport.active = False
        if body is not None:
            body.connectionLost(reason)

    def ended_ok(self) -> None:
        if not self.deferred.called:
            message = "upstream ended the stream without a response"
            self._finish(Failure(UpstreamResponseError(message)))
            return
        self._finish(Failure(ResponseDone()))

    # -- the request body --------------------------------------------------------------

    def upload(self, producer: Any) -> None:
        self.producer = producer
        self.upload_done = False
        producer.startProducing(self).addCallbacks(self._uploaded, self._upload_failed)

    def write(self, data: bytes) -> None:
        """The body producer's consumer side: queue, send what the windows allow."""
        self.outgoing += data
        self.flush()

    def flush(self) -> None:
        sent = self.connection.send_data(self.stream_id, self.outgoing)
        del self.outgoing[:sent]
        if self.producer is None:
            return
        if self.outgoing:
            self.producer.pauseProducing()
        elif not self.upload_done:
            self.producer.resumeProducing()
        if self.upload_done and not self.outgoing and not self.upload_finished:
            self.upload_finished = True
            self.connection.end_stream(self.stream_id)

    def _uploaded(self, _: Any) -> None:
        self.upload_done = True
        self.flush()

    def _upload_failed(self, reason: Failure) -> None:
        self.upload_done = True
        self.connection.reset(self.stream_id)
        self._finish(reason)

    def _stop_upload(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None and not self.upload_done:
            producer.stopProducing()


class H2UpstreamConnection(Protocol):
    """One cleartext HTTP/2 connection to an upstream, shared by concurrent requests."""

    def __init__(self, client: H2Client, key: tuple[str, int]) -> None:
        self.client = client
        self.key = key
        self.scheme = b"https" if getattr(client.connector.config, "tls", None) else b"http"
        self.checked_alpn = self.scheme == b"http"
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, H2Stream] = {}
        self.lost = False
        self.idle_call: Any = None
        #: Requests waiting for a stream: the peer's SETTINGS_MAX_CONCURRENT_STREAMS
        #: are all in use (as Go's transport waits rather than fail them).
        #: Each entry: start on this connection, or go elsewhere (``redo``) when it
        #: closes or drains first.
        self.waiting: deque[tuple[Callable[[], None], Callable[[], None]]] = deque()
        #: The peer sent GOAWAY: the streams it accepted finish, no new ones start.
        self.draining = False

    def when_room(self, start: Callable[[], None], redo: Callable[[], None]) -> None:
        """Run ``start`` once a new stream is allowed (at once when it is)."""
        if self.lost or self.draining:
            redo()
        elif len(self.streams) < self.h2.remote_settings.max_concurrent_streams:
            start()
        else:
            self.waiting.append((start, redo))

    def stream_closed(self) -> None:
        while self.waiting and not (self.lost or self.draining):
            if len(self.streams) >= self.h2.remote_settings.max_concurrent_streams:
                return
            start, _ = self.waiting.popleft()
            start()
        self.maybe_idle()

    def _redo_waiting(self) -> None:
        waiting, self.waiting = self.waiting, deque()
        for _, redo in waiting:
            redo()

    def connectionMade(self) -> None:
        self.h2.initiate_connection()
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.lost:
            self.transport.write(data)

    def open(
        self,
        method: bytes,
        authority: bytes,
        target: bytes,
        headers: Headers,
        producer: Any,
        deferred: Deferred[Any],
    ) -> H2Stream:
        stream_id = self.h2.get_next_available_stream_id()
        fields = [
            (b":method", method),
            (b":scheme", self.scheme),
            (b":authority", (headers.getRawHeaders(b"host") or [authority])[0]),
            (b":path", target if target.startswith(b"/") else b"/" + target),
        ]
        for name, values in headers.getAllRawHeaders():
            lower = name.lower()
            if lower in _CONNECTION_SPECIFIC or (lower == b"te" and values != [b"trailers"]):
                continue
            fields.extend((lower, value) for value in values)
        if producer is not None and producer.length:
            fields.append((b"content-length", b"%d" % producer.length))
        stream = H2Stream(self, stream_id, deferred)
        self.streams[stream_id] = stream
        self.h2.send_headers(stream_id, fields, end_stream=producer is None)
        self._flush()
        if producer is not None:
            stream.upload(producer)
        return stream

    def send_data(self, stream_id: int, data: bytearray) -> int:
        """Send as much of ``data`` as the windows and frame size allow; how much."""
        sent = 0
        while sent < len(data):
            try:
                window = self.h2.local_flow_control_window(stream_id)
            except H2Error:
                return len(data)  # the stream is gone: drop the rest
            size = min(window, self.h2.max_outbound_frame_size, len(data) - sent)
            if size <= 0:
                break
            self.h2.send_data(stream_id, bytes(data[sent : sent + size]))
            sent += size
        self._flush()
        return sent

    def end_stream(self, stream_id: int) -> None:
        try:
            self.h2.end_stream(stream_id)
        except H2Error:
            return
        self._flush()

    def acknowledge(self, stream_id: int, size: int) -> None:
        if self.lost or not size:
            return
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except H2Error:
            return
        self._flush()

    def reset(self, stream_id: int) -> None:
        if self.lost:
            return
        try:
            self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        except H2Error:
            return
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        if not self.checked_alpn:
            # Over TLS the first bytes come after the handshake: ALPN must have said h2.
            self.checked_alpn = True
            chosen = getattr(self.transport, "negotiatedProtocol", None)
            if chosen != b"h2":
                message = f"upstream did not negotiate HTTP/2 over TLS (ALPN: {chosen!r})"
                self._fail_all(Failure(UpstreamResponseError(message)))
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
        try:
            events = self.h2.receive_data(data)
        except H2Error as error:
            self._fail_all(Failure(UpstreamResponseError(f"HTTP/2 protocol error: {error}")))
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        for event in events:
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, ResponseReceived) and stream is not None:
                stream.response(event.headers)
            elif isinstance(event, DataReceived) and stream is not None:
                stream.data(event.data, event.flow_controlled_length)
            elif isinstance(event, StreamEnded) and stream is not None:
                stream.ended_ok()
            elif isinstance(event, TrailersReceived):
                pass  # Caddy copies trailers; twisted.web has no way to send them
            elif isinstance(event, StreamReset) and stream is not None:
                message = f"upstream reset the stream ({event.error_code!r})"
                stream._finish(Failure(UpstreamResponseError(message)))
            elif isinstance(event, WindowUpdated):
                targets = [stream] if stream is not None else list(self.streams.values())
                for each in targets:
                    if each.outgoing:
                        each.flush()
            elif isinstance(event, ConnectionTerminated):
                self._goaway(event.last_stream_id or 0)
        self._flush()

    def _fail_all(self, reason: Failure) -> None:
        self.lost = True  # no new streams on it, whatever comes next
        for stream in list(self.streams.values()):
            stream._finish(reason)
        self._redo_waiting()

    def _goaway(self, last_stream_id: int) -> None:
        """The peer closes (an upstream shutting down or reloading): new and waiting
        requests go to a new connection. The streams in flight fail: those above
        ``last_stream_id`` were never processed (safe to retry), and h2's state machine
        refuses every frame after a GOAWAY, so the accepted ones cannot finish here
        either (Go's transport would let them)."""
        self.draining = True
        self.client.forget(self)
        self._redo_waiting()
        for stream_id, stream in list(self.streams.items()):
            processed = "processed" if stream_id <= last_stream_id else "never processed"
            message = f"upstream sent GOAWAY (request {processed})"
            stream._finish(Failure(UpstreamResponseError(message)))
        if self.transport is not None:
            self.transport.loseConnection()

    def maybe_idle(self) -> None:
        if self.streams or self.lost:
            return
        if self.draining:
            self.transport.loseConnection()  # type: ignore[union-attr]
        else:
            self.client.idle(self)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost = True
        self.client.forget(self)
        message = "upstream closed the HTTP/2 connection"
        self._fail_all(Failure(UpstreamResponseError(message)))


class H2Client:
    """One HTTP/2 connection per upstream address (dialed on first use, requests
    arriving meanwhile wait for it), closed after ``idle_timeout`` without streams."""

    def __init__(self, connector: Any, reactor: Any) -> None:
        self.connector = connector
        self.reactor = reactor
        self.idle_timeout = connector.config.keepalive.idle_timeout or 120.0
        self.connections: dict[tuple[str, int], H2UpstreamConnection] = {}
        self.dialing: dict[tuple[str, int], list[Deferred[H2UpstreamConnection]]] = {}

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
        key = (host, port)
        opened: list[H2Stream] = []

        def cancel(_: Any) -> None:
            if opened:
                opened[0].abort()

        result: Deferred[LeanResponse] = Deferred(cancel)

        def start(connection: H2UpstreamConnection) -> None:
            if result.called:
                return
            self._busy(connection)
            if on_connection is not None:
                on_connection(connection)
            try:
                opened.append(
                    connection.open(
                        method, authority(host, port), target, headers, producer, result
                    )
                )
            except H2Error as error:
                result.errback(UpstreamResponseError(f"HTTP/2: {error}"))

        def failed(reason: Failure) -> None:
            if not result.called:
                result.errback(reason)

        def room(connection: H2UpstreamConnection) -> None:
            connection.when_room(lambda: start(connection), redo)

        def redo() -> None:
            if not result.called:
                self._connection(key).addCallbacks(room, failed)

        redo()
        return result

    def _connection(self, key: tuple[str, int]) -> Deferred[H2UpstreamConnection]:
        waiter: Deferred[H2UpstreamConnection] = Deferred()
        existing = self.connections.get(key)
        if existing is not None and not existing.lost:
            waiter.callback(existing)
            return waiter
        waiting = self.dialing.get(key)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        waiters = self.dialing[key] = [waiter]
        tls = getattr(self.connector.config, "tls", None) is not None
        endpoint = self.connector.endpoint(*key, alpn=(b"h2",) if tls else ())

        def connected(connection: H2UpstreamConnection) -> None:
            self.dialing.pop(key, None)
            self.connections[key] = connection
            for each in waiters:
                each.callback(connection)

        def failed(reason: Failure) -> None:
            self.dialing.pop(key, None)
            for each in waiters:
                each.errback(reason)

        endpoint.connect(ConnectionFactory(self, key, H2UpstreamConnection)).addCallbacks(
            connected, failed
        )
        return waiter

    def _busy(self, connection: H2UpstreamConnection) -> None:
        if connection.idle_call is not None and connection.idle_call.active():
            connection.idle_call.cancel()
        connection.idle_call = None

    def idle(self, connection: H2UpstreamConnection) -> None:
        self._busy(connection)
        transport: Any = connection.transport
        connection.idle_call = self.reactor.callLater(self.idle_timeout, transport.loseConnection)

    def forget(self, connection: H2UpstreamConnection) -> None:
        self._busy(connection)
        if self.connections.get(connection.key) is connection:
            del self.connections[connection.key]

    def close(self) -> None:
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.loseConnection()
        self.connections.clear()
