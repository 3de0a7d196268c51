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
* outbound header validation is off (see ``__init__``) and outbound normalisation is
  done by ``writeHeaders``, remembered per header list; HPACK blocks are remembered
  while the compression context is unchanged (:mod:`caddytw.wire.hpackcache`);
* the frames one read produces go out in one transport write at its end, and a small
  response with nothing queued is framed at once instead of through the sending loop;
* a response written while a read is handled is held (headers and up to one frame of
  body) until it ends or the read is done, then framed as bytes by
  :mod:`caddytw.wire.h2frames` with h2's state and windows kept: HEADERS and one DATA
  frame carrying END_STREAM, instead of three frames built as objects by h2. Anything
  else sent on that stream first frames what is held, so its frames keep their order;
* a stream whose window is exhausted is blocked in the priority tree instead of
  spinning the loop until the peer's WINDOW_UPDATE arrives;
* a read goes through :mod:`caddytw.wire.h2receive`, which receives a new request's
  HEADERS frame without h2's frame objects (h2's state kept, the rest left to h2).

Private twisted names this relies on (all state of ``H2Connection``; twisted is pinned
``<27`` in setup.cfg and ``tests/h2/test_private_api.py`` checks each one exists):
``_sendPrioritisedData`` (the loop, overridden), ``_stillProducing``,
``_consumerBlocked``, ``_sendingDeferred``, ``_outboundStreamQueues``,
``_requestDone`` (wrapped), ``_END_STREAM_SENTINEL``, ``_reactor``,
``_handleWindowUpdate`` (wrapped); for the receiving loop (``dataReceived``, replaced)
the handlers it calls, ``_requestDataReceived``, ``_requestEnded``, ``_requestAborted``,
``_handlePriorityUpdate``, ``_terminate``, ``_tryToWriteControlData``, and
``_streamCleanupCallbacks``; ``_send100Continue``, ``_respondToBadRequestAndDisconnect``
and ``abortRequest`` (wrapped); ``H2Stream._convertHeaders`` (replaced), ``_request``,
``_send100Continue``; and ``priority``'s ``PriorityTree._streams`` (the streams in the
tree). Everything else is public h2/twisted/priority API.
"""

from __future__ import annotations

import contextlib
from collections import deque
from io import BytesIO
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
import priority
from h2.utilities import HeaderValidationFlags, normalize_outbound_headers, validate_headers
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.web._http2 import _END_STREAM_SENTINEL, H2Connection, H2Stream
from twisted.web.http_headers import Headers

from caddytw.http.body import DEFAULT_LIMIT, EMPTY, BodyAborted, RequestBody
from caddytw.http.framebudget import CREDIT_PER_DATA_FRAME, FrameBudget, FrameScanner
from caddytw.http.pseudo import BadRequest, RequestLine, request_line
from caddytw.wire import h2frames, h2receive, hpackcache
from caddytw.wire.channel import ProtocolName, head_then_body

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

#: Valid request header lists, and normalised response header lists, remembered per
#: connection.
HEADER_LISTS = 64
_REQUEST_HEADERS = HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
)
_RESPONSE_HEADERS = HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=True, is_push_promise=False
)

#: h2's defaults, which the peer assumes until it sees our settings.
DEFAULT_WINDOW = 65_535


class _LazyRepr:
    """``repr(frame)`` deferred until formatted: h2's ``_receive_frame`` passes
    ``repr(frame)`` to its trace log for every frame it receives, which formats the
    frame (a hex dump of its payload) even though the log is off (h2's default
    ``DummyLogger``). Put in h2.connection's namespace as ``repr`` (its only use there,
    checked by ``tests/h2/test_private_api.py``), the log still gets the same text when a
    logger is configured, through ``%s``."""

    __slots__ = ("_obj",)

    def __init__(self, obj: object) -> None:
        self._obj = obj

    def __str__(self) -> str:
        return repr(self._obj)

    __repr__ = __str__


def _defer_frame_reprs() -> None:
    import h2.connection

    h2.connection.repr = _LazyRepr  # type: ignore[attr-defined]


_defer_frame_reprs()


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
    requestFactory: Any  # set by whoever switches the connection to HTTP/2

    def __init__(self, reactor: Any = None) -> None:
        super().__init__(reactor)
        # Response headers come from twisted's ``Headers`` (which already refuses CR/LF
        # in names and values) and h2 still normalises them (lower-case names,
        # connection-specific fields stripped): re-validating every outbound header
        # was a tenth of the CPU of a small HTTP/2 response. Inbound validation stays.
        self.conn.config.validate_outbound_headers = False
        # h2 treats a malformed request header block as a connection error; RFC 9113
        # section 8.1.1 makes it an error of that stream only. h2's own checks run per
        # stream in ``_requestReceived`` instead, which resets just that stream.
        self.conn.config.validate_inbound_headers = False
        # Repeated header blocks (same response fields, same request) coded once.
        hpackcache.install(self.conn)
        # A new request's HEADERS frame is received without h2's frame objects.
        self._receiver = h2receive.Receiver(self.conn)
        # Response headers are normalised by ``writeHeaders`` (remembered per list); the
        # other callers of ``send_headers`` (400, 100 Continue, ``_refuse``) pass
        # lower-case, trimmed fields already.
        self.conn.config.normalize_outbound_headers = False
        self._normalized: dict[tuple[Any, ...], list[Any]] = {}
        #: Queued (not yet framed) response bytes per stream.
        self._queued: dict[int, int] = {}
        self.frame_budget = FrameBudget(self._reactor.seconds())
        self.frame_scanner = FrameScanner()
        #: True while the events of one read are handled: the frames they produce
        #: (response headers and bodies, WINDOW_UPDATEs, RST_STREAMs) stay in h2's
        #: buffer and go out with one transport write at the end of the read.
        self._batching = False
        #: Request header lists h2's checks accepted, with what they give a request
        #: or the status refusing them (see ``_requestReceived``).
        self._valid_headers: dict[tuple[Any, ...], tuple[list[Any], RequestHead | None, int]] = {}
        #: Responses held back while a read is handled (see ``writeHeaders``).
        self._held: dict[int, _Held] = {}
        self._peer: Any = None
        self._host: Any = None

    def getPeer(self) -> Any:
        """The client's address, asked of the transport once per connection: every
        request asks (twisted's ``H2Stream`` passes the question on), and each ask
        built a new address object from the socket's (the host's: a ``getsockname``)."""
        peer = self._peer
        if peer is None:
            peer = self._peer = super().getPeer()
        return peer

    def getHost(self) -> Any:
        """This side's address, asked once per connection (see :meth:`getPeer`)."""
        host = self._host
        if host is None:
            host = self._host = super().getHost()
        return host

    def connectionMade(self) -> None:
        raise_transport_buffer(self.transport)
        super().connectionMade()
        self.conn.update_settings(local_settings())
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        transport: Any = self.transport
        transport.write(self.conn.data_to_send())

    # -- receiving ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Twisted's loop over h2's events, made safe for streams that end in the batch.

        h2 parses a whole read before any event is handled, so a stream reset later in
        the same read (HEADERS(1) HEADERS(3) RST_STREAM(1)) is already closed in h2 when
        its request would be dispatched: its response then raised out of this loop and
        every later event of the read was lost, wedging the connection. A request reset
        in the same read is never dispatched; events of streams we do not serve are
        dropped (their flow-control credit returned).
        """
        control = self.frame_scanner.control_frames(data)
        if not self.frame_budget.spend(control, self._reactor.seconds()):
            # A flood of frames that carry no request (SETTINGS, PING, ...): cut before
            # h2 spends time parsing them.
            self.conn.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            self._terminate(Failure(ConnectionLost("HTTP/2 control frame flood")))
            return
        try:
            events = self._receiver.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._terminate(Failure())
            return
        self.resetTimeout()
        # (a reset is a control frame: most reads have none and skip the scan)
        cancelled = (
            {e.stream_id for e in events if type(e) is h2.events.StreamReset} if control else ()
        )
        self._batching = True
        try:
            self._handle_events(events, cancelled)
        finally:
            self._release_all()
            self._batching = False
        if self._stillProducing:
            self._tryToWriteControlData()

    def _handle_events(self, events: list[Any], cancelled: Any) -> None:
        """Twisted's dispatch of one read's events (see :meth:`dataReceived`)."""
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                if event.stream_id not in cancelled:
                    self._requestReceived(event)
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self.streams:
                    self._requestDataReceived(event)
                else:
                    self._return_credit(event)
            elif isinstance(event, h2.events.StreamEnded):
                if event.stream_id in self.streams:
                    self._requestEnded(event)
            elif isinstance(event, h2.events.StreamReset):
                if event.stream_id in self.streams:
                    self._requestAborted(event)
            elif isinstance(event, h2.events.WindowUpdated):
                self._handleWindowUpdate(event)
            elif isinstance(event, h2.events.PriorityUpdated):
                self._handlePriorityUpdate(event)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._end_batch()  # answers to earlier streams of this read go first
                transport: Any = self.transport
                transport.loseConnection()
                self.connectionLost(
                    Failure(ConnectionLost("Remote peer sent GOAWAY")), _cancelTimeouts=False
                )
            if not self._stillProducing:
                return  # the connection was torn down while handling this read

    # -- batching the writes of one read ----------------------------------------------------

    def _end_batch(self) -> None:
        """Write what the read produced so far, and write directly from now on."""
        self._release_all()
        self._batching = False
        super()._tryToWriteControlData()

    def _tryToWriteControlData(self) -> bool:
        """Twisted's write of h2's pending frames, deferred to the end of the read while
        batching (a TLS record and an ``SSL_write`` per frame group was a good part of
        a small HTTP/2 response's cost). Returns whether the connection is still up."""
        if self._batching:
            return True
        return bool(super()._tryToWriteControlData())

    def _terminate(self, reason: Failure) -> None:
        """Flush the batch (answers, then h2's GOAWAY) before tearing down."""
        self._release_all()
        self._batching = False
        super()._terminate(reason)

    def _requestAborted(self, event: Any) -> None:
        """The client reset a stream: its held answer is dropped, the others are framed
        first (too many resets close the connection with a GOAWAY, which they precede)."""
        self._held.pop(event.stream_id, None)
        self._release_all()
        super()._requestAborted(event)

    def _return_credit(self, event: Any) -> None:
        """Acknowledge body bytes of a stream nobody reads, so the connection window
        does not shrink for good."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _requestReceived(self, event: Any) -> None:
        """Check the header block (h2's checks, then the request line's) and start the
        stream; a malformed block resets this stream, a bad request line answers 400
        (or 405 for CONNECT) on it; neither touches the other streams."""
        stream_id: int = event.stream_id
        # h2's checks and the request line are pure functions of the header list: a
        # list already judged on this connection (a client repeating its request) is
        # not judged again. Lists h2 refuses are not remembered.
        key = tuple(event.headers)
        known = self._valid_headers.get(key)
        if known is None:
            try:
                valid = list(validate_headers(event.headers, _REQUEST_HEADERS))
            except h2.exceptions.ProtocolError:
                self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
                return
            pseudo = {name: value for name, value in valid if name[:1] == b":"}
            hosts = [value for name, value in valid if name == b"host"]
            try:
                known = (valid, RequestHead(valid, request_line(pseudo, hosts)), 0)
            except BadRequest as bad:
                known = (valid, None, bad.status)
            if len(self._valid_headers) >= HEADER_LISTS:
                self._valid_headers.clear()
            self._valid_headers[key] = known
        headers, head, refusal = known
        if head is None:
            self._refuse(stream_id, refusal, body_follows=event.stream_ended is None)
            return
        stream = CaddyH2Stream(
            stream_id,
            self,
            headers,
            head,
            self.requestFactory,
            self.site,
            self.factory,
            body_follows=event.stream_ended is None,
        )
        self.streams[stream_id] = stream
        self._outboundStreamQueues[stream_id] = deque()
        # Not in the priority tree yet: a response framed at once never needs it (see
        # ``_prioritise``). No ``_streamCleanupCallbacks`` Deferred either: nothing
        # here waits for one (see ``_requestDone``).
        # Dispatched at its headers: the body streams to the handler as it arrives.
        stream.dispatch()

    def push(self, parent: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """Server push (the ``push`` handler): promise the request ``headers`` on the
        client's stream ``parent`` and serve it as if the client had sent it, on the
        promised stream. False when the client disabled push (SETTINGS_ENABLE_PUSH 0),
        ``parent`` is not open any more, or it is itself a pushed stream."""
        if not self.conn.remote_settings.enable_push or parent % 2 == 0:
            return False
        if parent not in self.streams or not self._sendable(parent):
            return False
        self._release(parent)  # the parent's answer so far goes first, as it was written
        promised = self.conn.get_next_available_stream_id()
        try:
            self.conn.push_stream(parent, promised, headers)
        except h2.exceptions.ProtocolError:
            return False
        self._write()  # the PUSH_PROMISE goes before the parent's response
        self._requestReceived(_Promised(promised, headers))
        return True

    def _refuse(self, stream_id: int, status: int, *, body_follows: bool) -> None:
        """Answer ``status`` with an empty body on a stream that is never dispatched;
        a body still coming is refused with RST_STREAM(NO_ERROR) after the answer
        (RFC 9113 section 8.1), so the client stops sending what nobody reads."""
        fields = [(b":status", b"%d" % status), (b"content-length", b"0")]
        try:
            self.conn.send_headers(stream_id, fields, end_stream=True)
            if body_follows:
                self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:
            return

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Any, streamID: int
    ) -> None:
        """Twisted's ``writeHeaders`` with h2's outbound normalisation (lower-case names,
        trimmed values, connection-specific fields dropped, secrets never indexed) done
        here, once per distinct header list on the connection: it is a pure function
        of the list and responses repeat. A stream h2 has already forgotten (reset,
        then closed) is not an error."""
        self._write_fields(streamID, code, [(b":status", code), *headers])

    def _write_fields(self, streamID: int, code: bytes, fields: list[Any]) -> None:
        """:meth:`writeHeaders` for ``fields``, the response's with ``:status`` first."""
        key = tuple(fields)
        normalized = self._normalized.get(key)
        if normalized is None:
            normalized = list(
                normalize_outbound_headers(
                    fields, _RESPONSE_HEADERS, self.conn.config.split_outbound_cookies
                )
            )
            if len(self._normalized) >= HEADER_LISTS:
                self._normalized.clear()
            self._normalized[key] = normalized
        if (
            self._batching
            and code[:1] != b"1"
            and streamID not in self._held
            and self._sendable(streamID)
        ):
            # Held until the response ends or the read is handled, then framed with
            # its body as bytes (``h2frames``): usually HEADERS and one DATA frame
            # with END_STREAM instead of three frames built by h2.
            self._held[streamID] = _Held(normalized)
            return
        self._release(streamID)
        try:
            self.conn.send_headers(streamID, normalized)
        except h2.exceptions.ProtocolError:
            return
        self._tryToWriteControlData()

    # -- flow control and buffering -------------------------------------------------------

    def remainingOutboundWindow(self, streamID: int) -> int:
        """Room for more response bytes: the peer's window, capped by our buffer."""
        return self._room(streamID, self.conn.local_flow_control_window(streamID))

    def _room(self, streamID: int, window: int) -> int:
        """:meth:`remainingOutboundWindow` for a peer's ``window`` already asked of h2."""
        held = self._held.get(streamID)
        pending = self._queued.get(streamID, 0) + (held.size if held is not None else 0)
        return min(window, self.stream_buffer) - pending

    def writeDataToStream(self, streamID: int, data: bytes) -> None:
        size = len(data)
        held = self._held.get(streamID)
        if held is not None:
            if not size:
                return
            total = held.size + size
            if total <= self.conn.max_outbound_frame_size and self._consumerBlocked is None:
                window = self.conn.local_flow_control_window(streamID)
                if window >= total:
                    # Still one DATA frame: held with the headers.
                    held.body.append(data)
                    held.size = total
                    if self._room(streamID, window) <= 0:
                        self.streams[streamID].flowControlBlocked()
                    return
            self._release(streamID)
        if 0 < size <= self.conn.max_outbound_frame_size and self._direct(streamID):
            window = self.conn.local_flow_control_window(streamID)
            if window >= size:
                # A chunk that fits one frame, nothing queued ahead of it: framed now,
                # without a trip through the priority tree and the sending loop.
                self.conn.send_data(streamID, data)
                self.frame_budget.credit(CREDIT_PER_DATA_FRAME)
                self._write()
                if self._room(streamID, window - size) <= 0:
                    self.streams[streamID].flowControlBlocked()
                return
        self._queued[streamID] = self._queued.get(streamID, 0) + len(data)
        self._prioritise(streamID)
        super().writeDataToStream(streamID, data)

    def endRequest(self, streamID: int) -> None:
        """The response is complete: ended at once when nothing of it is still queued."""
        if streamID in self._held:
            self._end_stream(streamID)
            return
        if self._direct(streamID):
            self._end_stream(streamID)
            return
        self._prioritise(streamID)
        super().endRequest(streamID)

    def _direct(self, stream_id: int) -> bool:
        """Whether ``stream_id`` may bypass the sending loop: nothing of it queued, the
        transport not pausing us, and h2 still letting us send on it."""
        queue = self._outboundStreamQueues.get(stream_id)
        return (
            queue is not None
            and not queue
            and self._consumerBlocked is None
            and self._sendable(stream_id)
        )

    def _end_stream(self, stream_id: int) -> None:
        """END_STREAM, a reset for a request body nobody will read, and the cleanup."""
        conn = self.conn
        held = self._held.pop(stream_id, None)
        if held is None:
            conn.end_stream(stream_id)
        elif not self._frame(stream_id, held, end_stream=True):
            self._requestDone(stream_id)  # h2 refused: the stream is gone
            return
        h2stream = self.streams.get(stream_id)
        if h2stream is not None and not h2stream.body.done:
            # Answered before the body ended (unread, refused or too large): ask
            # the client to stop sending it (RFC 9113 section 8.1), as Go does.
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        self._write()
        self._requestDone(stream_id)

    def _prioritise(self, stream_id: int) -> None:
        """Put ``stream_id`` in the priority tree (blocked) before the sending loop is to
        serve it: a stream enters the tree when something of it is queued (or when the
        client sends priority information for it), not at its request; inserting and
        removing every stream was a tenth of the h2 work of a small response. A stream
        already cleaned up is left out (twisted's write to it raises, as it always did)."""
        if stream_id not in self._outboundStreamQueues:
            return
        try:
            self.priority.insert_stream(stream_id)
        except priority.DuplicateStreamError:
            return
        self.priority.block(stream_id)

    def _requestDone(self, streamID: int) -> None:
        """Twisted's cleanup of a finished stream, for a stream that may never have
        entered the priority tree, and without the per-stream cleanup Deferred (which
        twisted fires for its own tests; none is made, see ``_requestReceived``)."""
        self._queued.pop(streamID, None)
        self._held.pop(streamID, None)
        del self._outboundStreamQueues[streamID]
        tree = self.priority
        # Most streams never enter the tree (see ``_prioritise``): asked first, as the
        # library's refusal (a formatted exception) cost more than the rest of this.
        if streamID in tree._streams:
            tree.remove_stream(streamID)
        del self.streams[streamID]
        cleanup = self._streamCleanupCallbacks.pop(streamID, None)
        if cleanup is not None:
            cleanup.callback(streamID)

    # -- held responses ----------------------------------------------------------------

    def _frame(self, stream_id: int, held: _Held, *, end_stream: bool) -> bool:
        """Frame a held response (HEADERS, then its body in one DATA frame) into h2's
        buffer. A stream h2 no longer lets us send on (it was sendable when held; h2
        cannot hear from the peer until the read is handled, but the connection may
        have been closed meanwhile) is dropped, as h2 would refuse it: False."""
        body = held.body[0] if len(held.body) == 1 else b"".join(held.body)
        try:
            h2frames.send_response(self.conn, stream_id, held.headers, body, end_stream=end_stream)
        except (h2.exceptions.ProtocolError, KeyError):
            return False
        if body:
            self.frame_budget.credit(CREDIT_PER_DATA_FRAME)
        return True

    def _release(self, stream_id: int) -> None:
        """Frame ``stream_id``'s held response (if any) before anything else is sent on
        it, so its frames keep their order."""
        held = self._held.pop(stream_id, None)
        if held is not None:
            self._frame(stream_id, held, end_stream=False)

    def _release_all(self) -> None:
        """The read is handled: frame what is still held, in the order it was written."""
        while self._held:
            self._release(next(iter(self._held)))

    def _send100Continue(self, streamID: int) -> None:
        """Twisted's, after the stream's held frames (h2 then judges the order)."""
        self._release(streamID)
        super()._send100Continue(streamID)

    def _respondToBadRequestAndDisconnect(self, streamID: int) -> None:
        """Twisted's 400, after the stream's held frames (as if they had been sent)."""
        self._release(streamID)
        super()._respondToBadRequestAndDisconnect(streamID)

    def abortRequest(self, streamID: int) -> None:
        """RST_STREAM after what the handler wrote before aborting, as without holding."""
        self._release(streamID)
        super().abortRequest(streamID)

    def _handlePriorityUpdate(self, event: Any) -> None:
        """Twisted's, kept from filling the priority tree with finished streams. A
        client that sends priority with every request (HEADERS with the PRIORITY flag,
        each stream depending on the one before, as Chrome does) made twisted insert
        each finished stream back into the tree (after its answer, or as the parent of
        the next), until the tree's limit (1,000) raised out of ``dataReceived`` and the
        connection broke. Priority of a stream that is over is dropped, and a
        dependency on one is a dependency on the root (RFC 9113 section 5.3.4 moves the
        dependents of a stream that leaves the tree up to its parent); a tree full of
        idle streams' priorities ignores more."""
        if self._over(event.stream_id):
            return
        if event.depends_on and self._over(event.depends_on):
            event.depends_on = 0
        try:  # noqa: SIM105 (rare, and a context manager per event costs more)
            super()._handlePriorityUpdate(event)
        except priority.TooManyStreamsError:
            pass

    def _over(self, stream_id: int) -> bool:
        """Whether ``stream_id`` was opened and is finished (or was never served):
        not ours any more, and below the highest stream id of its side."""
        if stream_id in self.streams:
            return False
        conn = self.conn
        if stream_id % 2:
            return bool(stream_id <= conn.highest_inbound_stream_id)
        return bool(stream_id <= conn.highest_outbound_stream_id)

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
        """Write every frame h2 has serialised since the last write, in one piece (at the
        end of the read, while one is being handled)."""
        if self._batching:
            return
        transport: Any = self.transport
        transport.write(self.conn.data_to_send())

    def _send_from(self, stream: int) -> int:
        """Frame as much of ``stream``'s next queued chunk as its window allows, write it
        with one transport write; returns the bytes sent."""
        conn = self.conn
        queue: deque[Any] = self._outboundStreamQueues[stream]
        chunk = queue.popleft()
        if not self._sendable(stream):
            # Reset by the client (or h2 closed it) after the chunk was queued: sending
            # would raise out of this loop and stop it for every other stream.
            self._requestDone(stream)
            return 0
        if chunk is _END_STREAM_SENTINEL:
            self._end_stream(stream)
            return 0
        window = conn.local_flow_control_window(stream)
        if window <= 0:
            queue.appendleft(chunk)
            self.priority.block(stream)
            return 0
        view = memoryview(chunk)
        size = min(len(view), window)
        frame = conn.max_outbound_frame_size
        frames = 0
        for start in range(0, size, frame):
            conn.send_data(stream, view[start : min(start + frame, size)])
            frames += 1
        self.frame_budget.credit(frames * CREDIT_PER_DATA_FRAME)
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

    def _sendable(self, stream_id: int) -> bool:
        """Whether h2 still lets us send on ``stream_id``."""
        h2_stream = self.conn.streams.get(stream_id)
        return h2_stream is not None and h2_stream.open and not h2_stream.closed


class _Held:
    """A response held back while a read is handled: its normalised header list and
    the body written so far (at most one frame's worth)."""

    __slots__ = ("body", "headers", "size")

    def __init__(self, headers: list[Any]) -> None:
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0


class _Promised:
    """A pushed request, shaped as h2's ``RequestReceived`` event (no body follows)."""

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = True


class RequestHead:
    """What a valid request header list gives each request that sends it, worked out
    once per list on a connection (clients repeat their lists): the checked request
    line, the regular fields as twisted's ``Headers`` holds them (canonical names, in
    order, Host from the checked authority last), the declared body length and whether
    the client waits for 100 Continue. Each request gets its own copy of the fields
    (:meth:`raw_headers`); building them with ``addRawHeader`` per field per request was
    most of the cost of starting a stream."""

    __slots__ = ("expects_continue", "fields", "length", "line")

    def __init__(self, headers: list[tuple[bytes, bytes]], line: RequestLine) -> None:
        self.line = line
        fields = Headers()
        length = None
        for name, value in headers:
            if name[:1] == b":" or name == b"host":
                continue
            fields.addRawHeader(name, value)
            if name == b"content-length":
                length = int(value)
        if line.host is not None:
            fields.setRawHeaders(b"host", [line.host])
        self.length = length
        expect = fields.getRawHeaders(b"expect")
        self.expects_continue = bool(expect and expect[0].lower() == b"100-continue")
        self.fields = [(name, tuple(values)) for name, values in fields.getAllRawHeaders()]

    def raw_headers(self) -> dict[bytes, list[bytes]]:
        """A fresh ``Headers._rawHeaders`` for one request (handlers change theirs)."""
        return {name: list(values) for name, values in self.fields}


class CaddyH2Stream(H2Stream):  # type: ignore[misc]
    """twisted's ``H2Stream`` fed a checked request line (``caddytw.http.pseudo``) and
    dispatched at its headers; its body streams through ``request.body``
    (:mod:`caddytw.http.body`), for which the stream is the :class:`BodySource`: while
    the handler is behind, received DATA is not acknowledged, so the client's window
    (``STREAM_WINDOW``) bounds what it can send ahead. The stream is its request's
    :class:`caddytw.wire.channel.Channel`."""

    protocol_name: ProtocolName = "h2"
    write_head = head_then_body

    def __init__(
        self,
        streamID: int,
        connection: CaddyH2Connection,
        headers: list[tuple[bytes, bytes]],
        head: RequestHead,
        requestFactory: Any,
        site: Any,
        factory: Any,
        *,
        body_follows: bool,
    ) -> None:
        self._head = head
        self._body_follows = body_follows
        self.body: RequestBody = EMPTY
        self._wants_continue = False
        self._reading_paused = False
        self._unacknowledged = 0  # DATA bytes held back while reading is paused
        # The stream is the transport of its request (as HTTP/3's): ``loseConnection``
        # and ``abortConnection`` end this exchange. twisted's is None, which turned a
        # handler's "drop the connection" into an AttributeError.
        self.transport = self  # type: ignore[assignment]
        super().__init__(streamID, connection, headers, requestFactory, site, factory)

    def _convertHeaders(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The request line, the regular fields (Host from the checked authority) and
        the body, from the header list's :class:`RequestHead`."""
        head = self._head
        line = head.line
        self.command = line.method
        self.path = line.target
        request = self._request
        request.requestHeaders._rawHeaders = head.raw_headers()
        request.content = BytesIO()  # twisted.web's form parsing reads it; stays empty
        if self._body_follows and head.length != 0:
            self.body = RequestBody(self, head.length, body_limit(self.site))
            self._wants_continue = head.expects_continue
        request.body = self.body
        request.parseCookies()

    def dispatch(self) -> None:
        self._request.requestReceived(self.command, self.path, b"HTTP/2")

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        """twisted's, building the connection's field list (``:status`` first) in one
        pass over the ``Headers`` instead of a list of its fields and then a copy."""
        fields = [(b":status", code)]
        fields += [(name, value) for name, values in headers.getAllRawHeaders() for value in values]
        self._conn._write_fields(self.streamID, code, fields)

    # -- from the connection ---------------------------------------------------------

    def receiveDataChunk(self, data: bytes, flowControlledLength: int) -> None:
        body = self.body
        if body is EMPTY or body.done:
            self._acknowledge(flowControlledLength)  # nobody reads it: keep windows open
            return
        body.feed(data)
        if self._reading_paused:
            self._unacknowledged += flowControlledLength
        else:
            self._acknowledge(flowControlledLength)

    def requestComplete(self) -> None:
        """The client ended the stream: the body is complete (dispatch was earlier)."""
        if self.body is not EMPTY:
            self.body.finish()

    def connectionLost(self, reason: Any) -> None:
        if self.body is not EMPTY and not self.body.done:
            self.body.abort(BodyAborted("HTTP/2 stream reset before the body ended"))
        super().connectionLost(reason)

    def _acknowledge(self, size: int) -> None:
        if size:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn.openStreamWindow(self.streamID, size)

    # -- BodySource --------------------------------------------------------------------

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False
        held, self._unacknowledged = self._unacknowledged, 0
        self._acknowledge(held)

    def body_wanted(self) -> None:
        if self._wants_continue:
            self._wants_continue = False
            if self.body.received == 0:
                self._send100Continue()

    def body_refused(self) -> None:
        """Over the limit: nothing more is read; the stream is reset with NO_ERROR
        after the answer (``_send_from``)."""
        self._reading_paused = False
        self._unacknowledged = 0


def body_limit(site: Any) -> int:
    """The largest request body a server reads (``max_request_body``, else the default)."""
    server = getattr(site, "caddy_server", None)
    configured = server.config.max_request_body if server is not None else 0
    return configured or DEFAULT_LIMIT
