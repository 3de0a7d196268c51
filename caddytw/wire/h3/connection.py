"""One QUIC connection driven by the reactor: aioquic's sans-IO core plus its timer.

Everything aioquic needs is passed in: datagrams, and "now" from one clock
(``reactor.seconds()``). After every input (a datagram, the timer, a write from a
Deferred) the driver drains events, sends what aioquic wants to send and re-arms a
single ``callLater`` at ``get_timer()``. Writes made outside of an input (a response
finished later) schedule one coalesced "transmit soon" call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection, MessageError
from aioquic.h3.connection import H3Stream as AioH3Stream
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic import events
from aioquic.quic.connection import NetworkAddress, QuicConnection
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.wire.h3.stream import H3Stream

if TYPE_CHECKING:
    from caddytw.wire.h3.stream import AnySite

log = Logger()


@dataclass
class MessageRejected(H3Event):
    """A request stream carried a malformed message and was reset (H3_MESSAGE_ERROR)."""

    stream_id: int


class StreamErrorH3Connection(H3Connection):
    """aioquic's ``H3Connection`` treating a malformed request as an error of its stream.

    aioquic closes the whole connection when a request's header block or its length is
    malformed (a ``MessageError``); RFC 9114 section 4.1.2 makes that a stream error of
    type H3_MESSAGE_ERROR. The stream is reset and stopped, the rest of its bytes are
    dropped, and the other requests of the connection go on. Errors on control and QPACK
    streams stay connection errors. Relies on aioquic's private
    ``_receive_request_or_push_data`` (checked by tests/h3/test_h3_memory.py).
    """

    def __init__(self, quic: QuicConnection) -> None:
        super().__init__(quic)
        self._rejected: set[int] = set()

    def _receive_request_or_push_data(
        self, stream: AioH3Stream, data: bytes, stream_ended: bool
    ) -> list[H3Event]:
        stream_id = stream.stream_id
        if stream_id in self._rejected:
            return []
        try:
            return super()._receive_request_or_push_data(stream, data, stream_ended)  # type: ignore[no-any-return]
        except MessageError:
            if self._is_client or stream_id % 4 != 0:
                raise
        self._rejected.add(stream_id)
        stream.buffer = b""
        self._quic.stop_stream(stream_id, ErrorCode.H3_MESSAGE_ERROR)
        self._quic.reset_stream(stream_id, ErrorCode.H3_MESSAGE_ERROR)
        return [MessageRejected(stream_id)]


class ConnectionRoutes:
    """What the listener provides so a connection can keep its routing entries in step."""

    def route_added(self, cid: bytes, connection: H3ServerConnection) -> None:
        raise NotImplementedError

    def route_removed(self, cid: bytes) -> None:
        raise NotImplementedError

    def connection_closed(self, connection: H3ServerConnection) -> None:
        raise NotImplementedError


class H3ServerConnection:
    """A server-side QUIC connection carrying HTTP/3 requests into a twisted.web Site."""

    def __init__(
        self,
        quic: QuicConnection,
        *,
        site: AnySite,
        reactor: Any,
        send: Callable[[bytes, NetworkAddress], None],
        routes: ConnectionRoutes,
        host: IPv4Address | IPv6Address,
    ) -> None:
        self.quic = quic
        self.h3: H3Connection | None = None
        self.site = site
        self.reactor = reactor
        self._send = send
        self._routes = routes
        self._host = host
        self.cids: set[bytes] = set()
        self.streams: dict[int, H3Stream] = {}
        self.closed = False
        self._timer: IDelayedCall | None = None
        self._timer_at: float | None = None
        self._transmit_call: IDelayedCall | None = None
        self._in_input = False  # inside an input handler that transmits when done

    # -- inputs ----------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        if self.closed:
            return
        self._in_input = True
        try:
            self.quic.receive_datagram(data, addr, now=self.reactor.seconds())
            self._process_events()
        finally:
            self._in_input = False
        self.transmit()

    def _handle_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = max(self._timer_at or 0.0, self.reactor.seconds())
        self._timer_at = None
        self._in_input = True
        try:
            self.quic.handle_timer(now=now)
            self._process_events()
        finally:
            self._in_input = False
        self.transmit()

    def close(self, error_code: int = 0, reason: str = "") -> None:
        """Close the connection (server stopping): send CONNECTION_CLOSE now."""
        if self.closed:
            return
        self.quic.close(error_code=error_code, reason_phrase=reason)
        self.transmit()

    # -- outputs ---------------------------------------------------------------------

    def transmit_soon(self) -> None:
        """Coalesce writes made outside of an input into one transmission."""
        if self._transmit_call is None and not self.closed and not self._in_input:
            self._transmit_call = self.reactor.callLater(0, self.transmit)

    def transmit(self) -> None:
        """Feed producers that have room, send datagrams, re-arm the timer."""
        if self._transmit_call is not None:
            if self._transmit_call.active():
                self._transmit_call.cancel()
            self._transmit_call = None
        if self.closed:
            return
        self._in_input = True
        try:
            for stream in [s for s in self.streams.values() if s.wants_pump]:
                stream.pump()
            self._process_events()  # a producer may have reset a stream
        finally:
            self._in_input = False
        if self.closed:
            return
        now = self.reactor.seconds()
        for data, addr in self.quic.datagrams_to_send(now=now):
            self._send(data, addr)
        self._arm_timer(self.quic.get_timer())

    def _arm_timer(self, timer_at: float | None) -> None:
        if self._timer is not None and self._timer_at != timer_at:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            delay = max(0.0, timer_at - self.reactor.seconds())
            self._timer = self.reactor.callLater(delay, self._handle_timer)
        self._timer_at = timer_at

    # -- events ----------------------------------------------------------------------

    def _process_events(self) -> None:
        event = self.quic.next_event()
        while event is not None:
            self._quic_event(event)
            if self.closed:
                return
            event = self.quic.next_event()

    def _quic_event(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ConnectionIdIssued):
            self.cids.add(event.connection_id)
            self._routes.route_added(event.connection_id, self)
        elif isinstance(event, events.ConnectionIdRetired):
            self.cids.discard(event.connection_id)
            self._routes.route_removed(event.connection_id)
        elif isinstance(event, events.ConnectionTerminated):
            self._terminated(event)
            return
        elif isinstance(event, events.ProtocolNegotiated):
            if event.alpn_protocol in H3_ALPN:
                self.h3 = StreamErrorH3Connection(self.quic)
        elif isinstance(event, (events.StreamReset, events.StopSendingReceived)):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.reset_by_peer()
        if self.h3 is not None:
            for h3_event in self.h3.handle_event(event):
                self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                if event.stream_id % 4 != 0:
                    return  # only client-initiated bidirectional streams carry requests
                stream = H3Stream(
                    self,
                    event.stream_id,
                    list(event.headers),
                    body_follows=not event.stream_ended,
                )
                if not stream.live:
                    # Refused at once (a bad request line): a body still coming is
                    # not wanted (STOP_SENDING with H3_NO_ERROR, RFC 9114 section 4.1).
                    if not event.stream_ended:
                        self.quic.stop_stream(event.stream_id, ErrorCode.H3_NO_ERROR)
                    return
                self.streams[event.stream_id] = stream
                stream.dispatch()
            # A second HEADERS frame is the trailer section: nothing to add but its end.
            elif event.stream_ended:
                stream.end_of_request()
        elif isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.data_received(event.data, event.stream_ended)
        elif isinstance(event, MessageRejected):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.reset_by_peer()

    def _terminated(self, event: events.ConnectionTerminated) -> None:
        if event.error_code == 0:
            self.abandon(ConnectionDone(event.reason_phrase or "QUIC connection closed"))
        else:
            self.abandon(ConnectionLost(event.reason_phrase or f"error {event.error_code}"))

    def abandon(self, reason: BaseException) -> None:
        """Drop every trace of the connection: timers, streams, then its routes."""
        if self.closed:
            return
        self.closed = True
        for timer in (self._timer, self._transmit_call):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._transmit_call = None
        self._timer_at = None
        failure = Failure(reason)
        for stream in list(self.streams.values()):
            stream.connection_lost(failure)
        self.streams.clear()
        self._routes.connection_closed(self)

    def stream_closed(self, stream: H3Stream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]

    # -- addresses -------------------------------------------------------------------

    def getPeer(self) -> IPv4Address | IPv6Address:
        addr = self.quic.get_peer_address()
        host, port = (addr[0], addr[1]) if addr else ("", 0)
        if ":" in host:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def getHost(self) -> IPv4Address | IPv6Address:
        return self._host

    @property
    def timers_pending(self) -> int:
        """Delayed calls this connection holds (for leak checks)."""
        return sum(1 for t in (self._timer, self._transmit_call) if t is not None and t.active())
