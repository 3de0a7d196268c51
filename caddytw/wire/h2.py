"""caddytw's HTTP/2 connection: twisted's ``H2Connection`` with faster, bounded sending.

Twisted's ``H2Connection`` (twisted.web._http2) is correct but slow for large bodies:

* its sending loop writes **one DATA frame per reactor turn** (``callLater(0)`` after
  every 16 KiB frame), so a download costs one ``epoll`` round trip, one ``send`` and
  one timer per frame;
* it splits a queued chunk with ``bytes`` slicing (copying the rest every frame) and
  sums the whole send queue for every ``remainingOutboundWindow`` call;
* it pauses a stream's producer only when the *peer's* flow-control window is used up,
  so a client advertising a 1 GiB window (curl, ``h2load -w30``) makes the server queue
  up to 1 GiB per stream in memory;
* it keeps h2's default receive windows (65,535 bytes for the connection and each
  stream) and 16 KiB frames, which caps uploads at one window per round trip.

:class:`CaddyH2Connection` changes exactly that:

* ``connectionMade`` sends a second SETTINGS frame (h2's public ``update_settings``:
  a larger ``INITIAL_WINDOW_SIZE`` and ``MAX_FRAME_SIZE``) and a connection-level
  WINDOW_UPDATE (``increment_flow_control_window``), so uploads are not throttled;
  memory stays bounded because the connection window (``CONNECTION_WINDOW``) bounds
  the unacknowledged bytes of all streams together;
* the sending loop sends frames until the transport asks it to pause or
  ``SEND_BUDGET`` bytes were written this turn, emitting all frames of a queued chunk
  with one ``transport.write`` (h2 serialises them into one buffer);
* a stream's queue holds at most ``STREAM_BUFFER`` bytes beyond what is on the wire:
  ``remainingOutboundWindow`` (which twisted's ``H2Stream`` uses to pause and resume
  its producer) is the smaller of the peer's window and that buffer's room, and is
  O(1) from a per-stream byte count;
* outbound header validation is off (see ``__init__``);
* a stream whose window is exhausted is blocked in the priority tree instead of
  spinning the loop until the peer's WINDOW_UPDATE arrives.

Private twisted names this relies on (all state of ``H2Connection``; twisted is pinned
``<27`` in setup.cfg and ``tests/h2/test_private_api.py`` checks each one exists):
``_sendPrioritisedData`` (the loop, overridden), ``_stillProducing``,
``_consumerBlocked``, ``_sendingDeferred``, ``_outboundStreamQueues``,
``_requestDone`` (wrapped), ``_END_STREAM_SENTINEL``, ``_reactor``, and
``_handleWindowUpdate`` (wrapped). Everything else is public h2/twisted API.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import priority
from twisted.internet.defer import Deferred
from twisted.web._http2 import _END_STREAM_SENTINEL, H2Connection

#: Receive window advertised for each stream (SETTINGS_INITIAL_WINDOW_SIZE).
STREAM_WINDOW = 1 << 20
#: Receive window for the whole connection (raised by a WINDOW_UPDATE on stream 0);
#: bounds the request-body bytes buffered for a connection whose streams are paused.
CONNECTION_WINDOW = 4 << 20
#: Largest frame the peer may send us (SETTINGS_MAX_FRAME_SIZE).
MAX_FRAME_SIZE = 1 << 16
#: Response bytes queued per stream before its producer is paused.
STREAM_BUFFER = 512 << 10
#: Bytes written to the transport in one reactor turn before yielding to other work.
SEND_BUDGET = 1 << 20

#: Bytes the TCP transport may hold before pausing us (twisted's default is 64 KiB,
#: less than one queued file chunk, which made every chunk a pause/resume round trip).
TRANSPORT_BUFFER = 1 << 20

#: h2's defaults, which the peer assumes until it sees our settings.
DEFAULT_WINDOW = 65_535


def local_settings() -> dict[int, int]:
    """The SETTINGS caddytw sends after h2's initial ones (h2 ``SettingCodes`` -> value)."""
    from h2.settings import SettingCodes

    return {
        SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
    }


def raise_transport_buffer(transport: Any, size: int = TRANSPORT_BUFFER) -> None:
    """Let the TCP transport under ``transport`` (directly, or under TLS) buffer ``size``
    bytes before it pauses its producer (``FileDescriptor.bufferSize``, public)."""
    from twisted.internet.abstract import FileDescriptor

    while transport is not None:
        if isinstance(transport, FileDescriptor):
            transport.bufferSize = max(transport.bufferSize, size)
            return
        transport = getattr(transport, "transport", None)


class CaddyH2Connection(H2Connection):  # type: ignore[misc]
    """One HTTP/2 connection (see the module docstring for what differs from twisted's)."""

    stream_buffer = STREAM_BUFFER
    send_budget = SEND_BUDGET

    def __init__(self, reactor: Any = None) -> None:
        super().__init__(reactor)
        # Response headers come from twisted's ``Headers`` (which already refuses CR/LF
        # in names and values) and h2 still normalises them (lower-case names,
        # connection-specific fields stripped): re-validating every outbound header
        # was a tenth of the CPU of a small HTTP/2 response. Inbound validation stays.
        self.conn.config.validate_outbound_headers = False
        #: Queued (not yet framed) response bytes per stream.
        self._queued: dict[int, int] = {}

    def connectionMade(self) -> None:
        raise_transport_buffer(self.transport)
        super().connectionMade()
        self.conn.update_settings(local_settings())
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        transport: Any = self.transport
        transport.write(self.conn.data_to_send())

    # -- flow control and buffering -------------------------------------------------------

    def remainingOutboundWindow(self, streamID: int) -> int:
        """Room for more response bytes: the peer's window, capped by our buffer."""
        window = self.conn.local_flow_control_window(streamID)
        return min(window, self.stream_buffer) - self._queued.get(streamID, 0)

    def writeDataToStream(self, streamID: int, data: bytes) -> None:
        self._queued[streamID] = self._queued.get(streamID, 0) + len(data)
        super().writeDataToStream(streamID, data)

    def _requestDone(self, streamID: int) -> None:
        self._queued.pop(streamID, None)
        super()._requestDone(streamID)

    def _handleWindowUpdate(self, event: Any) -> None:
        """Also wake the sending loop: a stream blocked on a zero window is unblocked."""
        super()._handleWindowUpdate(event)
        self._wake()

    def _wake(self) -> None:
        waiting = self._sendingDeferred
        if waiting is not None:
            self._sendingDeferred = None
            waiting.callback(None)

    # -- the sending loop -----------------------------------------------------------------

    def _sendPrioritisedData(self, *args: Any) -> None:
        """Send queued data by priority until paused, idle, or out of budget this turn."""
        if not self._stillProducing:
            return
        budget = self.send_budget
        while budget > 0:
            try:
                stream = next(self.priority)
            except priority.DeadlockError:
                # Nothing sendable: park until a stream has data or a window opens.
                self._sendingDeferred = Deferred()
                self._sendingDeferred.addCallback(self._sendPrioritisedData)
                return
            if self._consumerBlocked is not None:
                self._consumerBlocked.addCallback(self._sendPrioritisedData)
                return
            budget -= self._send_from(stream)
            if not self._stillProducing:
                return
        self.resetTimeout()
        self._reactor.callLater(0, self._sendPrioritisedData)

    def _write(self) -> None:
        """Write every frame h2 has serialised since the last write, in one piece."""
        transport: Any = self.transport
        transport.write(self.conn.data_to_send())

    def _send_from(self, stream: int) -> int:
        """Frame as much of ``stream``'s next queued chunk as its window allows, write it
        with one transport write; returns the bytes sent."""
        conn = self.conn
        queue: deque[Any] = self._outboundStreamQueues[stream]
        chunk = queue.popleft()
        if chunk is _END_STREAM_SENTINEL:
            conn.end_stream(stream)
            self._write()
            self._requestDone(stream)
            return 0
        window = conn.local_flow_control_window(stream)
        if window <= 0:
            queue.appendleft(chunk)
            self.priority.block(stream)
            return 0
        view = memoryview(chunk)
        size = min(len(view), window)
        frame = conn.max_outbound_frame_size
        for start in range(0, size, frame):
            conn.send_data(stream, view[start : min(start + frame, size)])
        if size < len(view):
            queue.appendleft(view[size:])
        self._queued[stream] -= size
        self._write()
        if not queue:
            self.priority.block(stream)
        h2stream = self.streams.get(stream)
        if h2stream is not None:
            if self.remainingOutboundWindow(stream) > 0:
                h2stream.windowUpdated()
            else:
                h2stream.flowControlBlocked()
        return size
