"""Request bodies streamed from the connection to the handler, with backpressure.

Why: a body used to be received whole (spooled to a temporary file, without a limit)
before any handler ran, so a handler that refuses the request (401, 413) still paid for
the body, and ``Expect: 100-continue`` was answered before anyone had accepted it. Now
the request is dispatched as soon as its head is complete and its body arrives through a
:class:`RequestBody` at ``request.body``, which any protocol can feed (HTTP/1.1 today;
HTTP/2 and HTTP/3 adopt it the same way).

Protocol side (the connection), through a :class:`BodySource` it passes in:

- ``RequestBody(source, length, limit)``: ``length`` is the declared size (None when
  unknown, e.g. chunked or an h2 stream without ``content-length``), ``limit`` the
  server's default for the most it will read (None: no limit), which applies unless the
  route states its own (see :meth:`RequestBody.limit_to`);
- :meth:`RequestBody.feed` for each piece received, :meth:`RequestBody.finish` at the
  end, :meth:`RequestBody.abort` when the connection or stream is lost;
- the body calls ``source.pause_reading()`` when more than :data:`HIGH_WATER` bytes wait
  for the handler and ``source.resume_reading()`` when they are taken (HTTP/1.1 pauses
  the socket; HTTP/2 withholds WINDOW_UPDATE), ``source.body_wanted()`` the first time a
  handler asks for the body (HTTP/1.1 sends ``100 Continue`` then), and
  ``source.body_refused()`` when the limit is passed (stop reading, close after the
  answer).

Handler side:

- :meth:`RequestBody.start` with a :class:`BodySink`: pieces arrive through
  ``sink.body_data``, the end through ``sink.body_end(None)`` or ``sink.body_end(error)``
  (a :class:`BodyTooLarge` past the limit, a :class:`BodyAborted` when the client went
  away or sent a malformed body);
  the body is an ``IPushProducer`` (``pauseProducing``/``resumeProducing``), so it can be
  registered with a consumer such as an upstream transport;
- :func:`collect` for handlers that need the whole body: a Deferred firing with the
  bytes, or failing with :class:`BodyTooLarge` (answer 413) past a bound;
  :func:`collect_file` the same into a temporary file (memory up to
  :data:`SPOOL_BYTES`), rewound, for bodies too big for memory;
- :class:`ThreadReader` for a worker thread that writes the body somewhere itself (a
  ``file_sync`` upload into its staged file): a blocking ``read`` fed as the body
  arrives, memory bounded, the body paused while the thread is behind;
- :meth:`RequestBody.limit_to` states the route's own limit before reading
  (``request_body`` ``max_size``, ``file_sync`` ``max_upload_size``): it replaces the
  server's default (``max_request_body``), up or down, as Caddy has only per-route
  limits; several stated limits keep the lowest. A body whose declared length is over
  the limit in force fails when it is read (or at once for a stated limit), without
  ``100 Continue`` and without reading it.

A handler that answers without reading leaves the body to the connection, which drains
a little of it (:data:`DRAIN_BYTES`) to keep the connection or else closes it.
"""

from __future__ import annotations

import tempfile
import threading
from collections import deque
from io import BytesIO
from typing import IO, Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

#: Bytes received but not taken by the handler before the connection stops reading.
HIGH_WATER = 256 * 1024
#: The server-wide default for the largest request body, as ``max_request_body`` of a
#: server (a caddytw extension; Caddy has none and only limits per ``request_body``).
DEFAULT_LIMIT = 1 << 30
#: What the connection still reads after an answer to keep it open (Go's server: 256 KiB).
DRAIN_BYTES = 256 * 1024
#: How long that drain may take, in seconds.
DRAIN_SECONDS = 5.0
#: :func:`collect_file` keeps bodies up to this size in memory.
SPOOL_BYTES = 100_000


class BodyTooLarge(Exception):
    """The body is (or says it will be) larger than its limit: answer 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"http: request body too large (limit {limit} bytes)")
        self.limit = limit


class BodyAborted(ConnectionError):
    """The body ended early: the client went away or sent a malformed body (400)."""


class BodySource(Protocol):
    """What a :class:`RequestBody` asks of the connection or stream that feeds it."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def body_wanted(self) -> None: ...

    def body_refused(self) -> None: ...


class BodySink(Protocol):
    """Where :meth:`RequestBody.start` delivers a body."""

    def body_data(self, data: bytes) -> None: ...

    def body_end(self, error: BaseException | None) -> None: ...


@implementer(IPushProducer)
class RequestBody:
    """One request's body as it arrives (see the module docstring for the contract)."""

    def __init__(self, source: BodySource | None, length: int | None, limit: int | None) -> None:
        self.source = source
        self.length = length
        self.limit = limit
        self.received = 0
        self.complete = False
        self.error: BaseException | None = None
        self.sink: BodySink | None = None
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False  # by the consumer
        self._source_paused = False
        self._ended = False  # body_end delivered
        # Whether a handler stated the route's own limit: until then ``limit`` is the
        # server's default, which a handler may still raise, so a declared length over
        # it is refused only when the body is read (``start``) or a limit is stated.
        self._stated = False

    @staticmethod
    def empty() -> RequestBody:
        """The body of a request without one (most requests): one shared, stateless
        object, so a GET costs no allocation here."""
        return EMPTY

    @classmethod
    def of(cls, data: bytes) -> RequestBody:
        """A complete body holding ``data`` (tests, internal requests)."""
        body = cls(None, len(data), None)
        body.feed(data)
        body.finish()
        return body

    # -- what the handler calls ------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether a handler asked for the body."""
        return self.sink is not None

    @property
    def done(self) -> bool:
        """Whether nothing more will arrive (complete, failed or too large)."""
        return self.complete or self.error is not None

    def limit_to(self, limit: int | None) -> None:
        """State the route's own limit (``request_body`` ``max_size``, ``file_sync``
        ``max_upload_size``; None: no limit of its own). The first one replaces the
        server's default, raising or lowering it (Caddy has no server-wide limit: a
        route's ``request_body`` is what its users set); later ones only lower it, as
        nested ``MaxBytesReader`` readers do. Fails now if the declared length or what
        already arrived is over the result."""
        if not self._stated:
            self._stated = True
            self.limit = limit
        elif limit is not None and (self.limit is None or limit < self.limit):
            self.limit = limit
        self._check_limit()

    def start(self, sink: BodySink) -> None:
        """Deliver the body to ``sink`` from now on (once per body)."""
        if self.sink is not None:
            raise RuntimeError("request body already being read")
        self.sink = sink
        self._check_limit()  # the server's default, when no handler stated a limit
        if not self.done and self.source is not None:
            self.source.body_wanted()
        self._flush()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._flush()

    def stopProducing(self) -> None:
        """The consumer wants no more: forget the body (the connection drains or closes)."""
        self.sink = None
        self._buffer.clear()
        self._buffered = 0
        self._ended = True
        self._resume_source()

    # -- what the connection calls ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.error is not None or not data:
            return
        self.received += len(data)
        # Not read yet, a route may still raise the server's default: the bytes are kept
        # (the buffer is bounded: reading pauses past HIGH_WATER).
        limit = self.limit
        if limit is not None and self.received > limit and (self._stated or self.started):
            self._fail(BodyTooLarge(limit))
            return
        if self._ended:
            return  # stopped by the consumer: discard
        if self.sink is not None and not self._paused and not self._buffer:
            self.sink.body_data(data)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._source_paused and self.source is not None:
            self._source_paused = True
            self.source.pause_reading()

    def finish(self) -> None:
        if self.error is None:
            self.complete = True
            self._flush()

    def abort(self, error: BaseException) -> None:
        """The connection or stream ended before the body did."""
        if not self.done:
            self.error = error
            self._flush()

    # -- inside ----------------------------------------------------------------------

    def _check_limit(self) -> None:
        """Fail with :class:`BodyTooLarge` if the body is (or says it will be) over the
        limit now in force."""
        if self.limit is None or self.error is not None or self._ended:
            return
        size = self.length if self.length is not None else self.received
        if max(size, self.received) > self.limit:
            self._fail(BodyTooLarge(self.limit))

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self._buffer.clear()
        self._buffered = 0
        if self.source is not None:
            self.source.body_refused()
        self._flush()

    def _flush(self) -> None:
        sink = self.sink
        if sink is None or self._ended:
            return
        while self._buffer and not self._paused and self.sink is sink:
            data = self._buffer.popleft()
            self._buffered -= len(data)
            sink.body_data(data)
        if self._buffered <= HIGH_WATER // 2:
            self._resume_source()
        if not self._buffer and self.done and not self._ended and self.sink is sink:
            self._ended = True
            sink.body_end(self.error)

    def _resume_source(self) -> None:
        if self._source_paused and self.source is not None:
            self._source_paused = False
            self.source.resume_reading()


class _EmptyBody(RequestBody):
    """No bytes, nothing to track: reading it ends at once, every change is a no-op."""

    def __init__(self) -> None:
        super().__init__(None, 0, None)
        self.complete = True

    def start(self, sink: BodySink) -> None:
        sink.body_end(None)

    def limit_to(self, limit: int | None) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass

    def feed(self, data: bytes) -> None:
        raise RuntimeError("a request without a body got body bytes")


EMPTY: RequestBody = _EmptyBody()


class _Collector:
    """A :class:`BodySink` writing a whole body into ``into``."""

    def __init__(self, into: IO[bytes]) -> None:
        self.into = into
        self.done: Deferred[IO[bytes]] = Deferred()

    def body_data(self, data: bytes) -> None:
        self.into.write(data)

    def body_end(self, error: BaseException | None) -> None:
        if error is not None:
            self.into.close()
            self.done.errback(error)
        else:
            self.into.seek(0)
            self.done.callback(self.into)


def body_from_file(content: IO[bytes] | None) -> RequestBody:
    """A complete body from a file a protocol filled before dispatch (HTTP/2, HTTP/3
    until they feed a :class:`RequestBody` as they receive)."""
    if content is None:
        return RequestBody.empty()
    content.seek(0)
    data = content.read()
    content.seek(0)
    return RequestBody.of(data) if data else RequestBody.empty()


def collect_file(body: RequestBody, limit: int | None = None) -> Deferred[IO[bytes]]:
    """The whole body in a rewound temporary file (the caller closes it): fails with
    :class:`BodyTooLarge` past ``limit`` (or the body's own limit) without reading on."""
    if limit is not None:
        body.limit_to(limit)
    spool = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115 (closed by the caller)
    collector = _Collector(spool)
    body.start(collector)
    return collector.done


def collect(body: RequestBody, limit: int | None = None) -> Deferred[bytes]:
    """The whole body as bytes, for handlers that need it at once (JSON APIs); fails as
    :func:`collect_file` does."""
    if limit is not None:
        body.limit_to(limit)
    collector = _Collector(BytesIO())
    body.start(collector)

    def read(into: IO[bytes]) -> bytes:
        data = into.read()
        into.close()
        return data

    return collector.done.addCallback(read)


class ThreadReader:
    """A request body as a blocking file for one worker thread (``read`` only).

    Why: a handler that writes the body to disk itself (``file_sync`` streams an upload
    into its staged temporary file, hashing as it goes) would otherwise spool it first
    and copy it after: twice the disk traffic. Disk writes must not run on the reactor,
    and a thread per chunk is too slow, so one thread reads this: the reactor side
    queues what arrives and pauses the body past ``high`` bytes queued (resumed below
    half of it), so memory stays flat whatever the upload's size; ``read`` waits for
    ``batch`` bytes (or the end), so the thread writes in large pieces.

    The body is asked for (``100 Continue``) on the first ``read``, so checks done
    before it refuse without inviting the body. ``read`` raises what ended the body
    (:class:`BodyTooLarge`, :class:`BodyAborted`).
    """

    def __init__(
        self,
        body: RequestBody,
        reactor: Any,
        high: int = 1 << 20,
        batch: int = 256 * 1024,
    ) -> None:
        self.body = body
        self.reactor = reactor
        self.high = high
        self.batch = min(batch, high)
        self._lock = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._ended = False
        self._error: BaseException | None = None
        self._asked = False  # worker side: the body was asked for
        self._paused = False  # reactor side

    # -- reactor thread (a BodySink) -------------------------------------------------

    def body_data(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._queued += len(data)
            over = self._queued > self.high
            self._lock.notify()
        if over and not self._paused:
            self._paused = True
            self.body.pauseProducing()

    def body_end(self, error: BaseException | None) -> None:
        with self._lock:
            self._ended = True
            self._error = error
            self._lock.notify()

    def _resume(self) -> None:
        with self._lock:
            if self._queued > self.high // 2:
                return
        if self._paused:
            self._paused = False
            self.body.resumeProducing()

    def _start(self) -> None:
        if not self.body.started:
            self.body.start(self)

    # -- worker thread ---------------------------------------------------------------

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (at least ``min(size, batch)`` unless the body ends
        first); ``b""`` at the end."""
        with self._lock:
            if not self._asked:
                self._asked = True
                self.reactor.callFromThread(self._start)
            want = min(size, self.batch)
            while self._queued < want and not self._ended:
                self._lock.wait()
            if self._error is not None:
                raise self._error
            taken: list[bytes] = []
            got = 0
            while self._chunks and got < size:
                chunk = self._chunks.popleft()
                if got + len(chunk) > size:
                    chunk, rest = chunk[: size - got], chunk[size - got :]
                    self._chunks.appendleft(rest)
                taken.append(chunk)
                got += len(chunk)
            self._queued -= got
            if self._queued <= self.high // 2:
                self.reactor.callFromThread(self._resume)
        return b"".join(taken)
