"""One HTTP/3 request stream, acting as the twisted.web request's channel.

Like ``twisted.web._http2.H2Stream``: the request is built with
``site.requestFactory(stream, queued=False)``, sees the stream as its channel (and as
its transport), and writes its response through ``writeHeaders``/``write``/
``requestDone``. The stream turns those into HTTP/3 frames on the connection.

Flow control: aioquic's ``send_data`` buffers without limit, so the stream measures what
is still held for it (unsent plus unacknowledged bytes) and pauses a push producer above
``HIGH_WATER``; the connection calls :meth:`H3Stream.pump` whenever data may have left
(after each ACK, timer and transmission), which resumes it below ``LOW_WATER``. A pull
producer is asked for one chunk at a time while the backlog is under ``HIGH_WATER``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.quic.connection import QuicConnection
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from caddytw.http.body import EMPTY, BodyAborted, RequestBody
from caddytw.http.pseudo import BadRequest, request_line
from caddytw.wire.channel import ProtocolName, head_then_body
from caddytw.wire.h2 import body_limit

if TYPE_CHECKING:
    from twisted.web.server import Site

    from caddytw.http.site import CaddySite

    #: What HTTP/3 serves: a server's site, or twisted.web's own ``Site``.
    AnySite = Site | CaddySite

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
PULL_BURST = 64  # most chunks asked of a pull producer per pump, to stay fair

PROTOCOL_VERSION = b"HTTP/3"  # what request.clientproto says (never HTTP/1.1: no chunking)

# Connection-specific fields are forbidden in HTTP/3 (RFC 9114 section 4.2).
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


class StreamOwner(Protocol):
    """What a stream needs from its connection."""

    quic: QuicConnection
    h3: H3Connection | None
    site: AnySite

    def transmit_soon(self) -> None: ...
    def stream_closed(self, stream: H3Stream) -> None: ...
    def getPeer(self) -> IPv4Address | IPv6Address: ...
    def getHost(self) -> IPv4Address | IPv6Address: ...


def stream_backlog(quic: QuicConnection, stream_id: int) -> int:
    """Bytes aioquic still holds for a stream (queued or sent but not acknowledged).

    aioquic has no public accessor; this reads the stream sender's buffer, the one
    place that grows when writes outpace the network. Tested against aioquic's own
    behaviour in tests/h3/test_stream_memory.py.
    """
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0
    return len(stream.sender._buffer)


class H3Stream:
    """A request/response exchange on one bidirectional QUIC stream, its request's
    :class:`caddytw.wire.channel.Channel`."""

    protocol_name: ProtocolName = "h3"

    def __init__(
        self,
        owner: StreamOwner,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        *,
        body_follows: bool = False,
    ):
        self.owner = owner
        self.stream_id = stream_id
        self.site = owner.site
        self.factory = owner.site
        self.transport = self  # ``request.channel.transport.loseConnection()`` resets us
        self.method = b""
        self.path = b""
        self.producer: Any = None
        self.streaming = False
        self._paused = False
        self._headers_sent = False
        self._done = False  # our side ended (response complete or stream reset)
        self._lost = False
        self._received = False  # requestReceived was called
        self._body_follows = body_follows
        self.body: RequestBody = EMPTY
        self.request = owner.site.requestFactory(self, queued=False)
        self._read_headers(headers)

    # -- incoming --------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether the exchange is still going (False once answered or reset)."""
        return not self._lost

    def _read_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Regular fields into the request; the request line from the pseudo-header
        fields, checked as HTTP/2's are (``caddytw.http.pseudo``): ``:authority`` is the
        Host, and a bad line is answered on this stream at once."""
        pseudo = {name: value for name, value in headers if name[:1] == b":"}
        hosts = [value for name, value in headers if name == b"host"]
        try:
            line = request_line(pseudo, hosts, http3=True)
        except BadRequest as bad:
            self._refuse(bad.status)
            return
        self.method, self.path = line.method, line.target
        request = self.request
        length: int | None = None
        for name, value in headers:
            if name[:1] == b":" or name == b"host":
                continue
            request.requestHeaders.addRawHeader(name, value)
            if name == b"content-length":
                length = int(value)  # aioquic checked it is a non-negative integer
        if line.host is not None:
            request.requestHeaders.setRawHeaders(b"host", [line.host])
        if self._body_follows and length != 0:
            self.body = RequestBody(self, length, body_limit(self.site))
        request.body = self.body  # type: ignore[union-attr]
        request.parseCookies()

    def dispatch(self) -> None:
        """Hand the request to the site at its headers; the body follows through
        ``request.body`` (:mod:`caddytw.http.body`)."""
        if self._received or self._lost:
            return
        self._received = True
        self.request.requestReceived(self.method, self.path, PROTOCOL_VERSION)

    def data_received(self, data: bytes, ended: bool) -> None:
        """Request body bytes (and maybe its end) arrived."""
        body = self.body
        if self._lost or body is EMPTY or body.done:
            return
        body.feed(data)
        if ended:
            body.finish()

    def end_of_request(self) -> None:
        """The stream ended after a trailer section."""
        if self.body is not EMPTY and not self._lost:
            self.body.finish()

    # -- BodySource ------------------------------------------------------------------
    # aioquic opens the stream's receive window as it hands data over, so reading
    # cannot be paused here: what the handler has not taken stays in ``request.body``,
    # bounded by the body's limit (and ``request_body`` ``max_size``).

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def body_wanted(self) -> None:
        pass  # HTTP/3 clients do not wait for 100 Continue before sending

    def body_refused(self) -> None:
        """Over the limit: ask the client to stop sending (STOP_SENDING)."""
        self._stop_reading()

    def _stop_reading(self) -> None:
        with contextlib.suppress(ValueError):
            self.owner.quic.stop_stream(self.stream_id, ErrorCode.H3_NO_ERROR)
        self.owner.transmit_soon()

    def reset_by_peer(self) -> None:
        """The client reset the stream or asked us to stop sending."""
        self._lost_connection(ConnectionLost("HTTP/3 stream reset by peer"))

    def connection_lost(self, reason: Failure) -> None:
        """The whole QUIC connection is gone."""
        self._lost_connection(reason.value or ConnectionLost("QUIC connection gone"))

    def _lost_connection(self, reason: BaseException) -> None:
        if self._lost:
            return
        self._lost = True
        self._done = True
        producer = self.producer
        self.producer = None
        if producer is not None:
            producer.stopProducing()
        if self.body is not EMPTY and not self.body.done:
            self.body.abort(BodyAborted("HTTP/3 stream ended before the body did"))
        self.request.connectionLost(Failure(reason))
        self.owner.stream_closed(self)

    # -- the channel interface twisted.web's Request writes to -----------------------

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Headers) -> None:
        if self._done or self.owner.h3 is None:
            return
        fields = [(b":status", code)]
        for name, values in headers.getAllRawHeaders():
            lower = name.lower()
            if lower in _HOP_BY_HOP:
                continue
            fields.extend((lower, value) for value in values)
        self.owner.h3.send_headers(self.stream_id, fields, end_stream=False)
        self._headers_sent = True
        self.owner.transmit_soon()

    write_head = head_then_body

    def write(self, data: bytes) -> None:
        if self._done or not data or self.owner.h3 is None:
            return
        self.owner.h3.send_data(self.stream_id, data, end_stream=False)
        self.owner.transmit_soon()
        if self.streaming and not self._paused and self.backlog() > HIGH_WATER:
            self._paused = True
            self.producer.pauseProducing()

    def writeSequence(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))

    def requestDone(self, request: Any) -> None:
        if self._done:
            return
        self._done = True
        h3 = self.owner.h3
        if h3 is not None:
            if self._headers_sent:
                h3.send_data(self.stream_id, b"", end_stream=True)
                if self.body is not EMPTY and not self.body.done:
                    self._stop_reading()  # answered without the whole body: stop it
            else:  # nothing was written (cannot happen via Request, kept for safety)
                h3.send_headers(self.stream_id, [(b":status", b"500")], end_stream=True)
            self.owner.transmit_soon()
        self.owner.stream_closed(self)

    def _respondToBadRequestAndDisconnect(self) -> None:
        """twisted.web calls this for an unparsable body (e.g. broken multipart)."""
        self._refuse(400)

    def _refuse(self, status: int) -> None:
        """Answer ``status``, empty, and end the exchange (the connection goes on)."""
        h3 = self.owner.h3
        if self._done or h3 is None:
            return
        self._done = True
        fields = [(b":status", b"%d" % status), (b"content-length", b"0")]
        h3.send_headers(self.stream_id, fields, end_stream=True)
        self.owner.transmit_soon()
        self._lost_connection(ConnectionLost("bad request"))

    def loseConnection(self) -> None:
        """End the exchange now: an unfinished response is reset so the client can tell
        it is incomplete (HTTP/1.1 would close the TCP connection)."""
        self.abortConnection()

    def abortConnection(self) -> None:
        if not self._done:
            self._done = True
            self.owner.quic.reset_stream(self.stream_id, ErrorCode.H3_INTERNAL_ERROR)
            self.owner.transmit_soon()
        self._lost_connection(ConnectionLost("HTTP/3 stream aborted"))

    def getPeer(self) -> IPv4Address | IPv6Address:
        return self.owner.getPeer()

    def getHost(self) -> IPv4Address | IPv6Address:
        return self.owner.getHost()

    def isSecure(self) -> bool:
        return True

    # -- producers -------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise ValueError(f"registering producer {producer} before {self.producer}")
        self.producer = producer
        self.streaming = bool(streaming)
        self._paused = False
        if self._done:
            producer.stopProducing()
            return
        if self.streaming and self.backlog() > HIGH_WATER:
            self._paused = True
            producer.pauseProducing()
        self.owner.transmit_soon()  # the next pump feeds a pull producer

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = False
        self._paused = False

    def backlog(self) -> int:
        return stream_backlog(self.owner.quic, self.stream_id)

    def pump(self) -> None:
        """Called by the connection when data may have left: feed or resume the producer."""
        producer = self.producer
        if producer is None or self._done:
            return
        if self.streaming:
            if self._paused and self.backlog() < LOW_WATER:
                self._paused = False
                producer.resumeProducing()
            return
        for _ in range(PULL_BURST):
            before = self.backlog()
            if before >= HIGH_WATER or self.producer is not producer or self._done:
                return
            producer.resumeProducing()
            if self.backlog() == before:
                return  # the producer wrote nothing now: it will write when it can

    @property
    def wants_pump(self) -> bool:
        return self.producer is not None and not self._done
