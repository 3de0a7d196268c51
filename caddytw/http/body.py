"""Request bodies streamed from the connection to the handler, with backpressure.

Why: a body used to be received whole (spooled to a temporary file, without a limit)
before any handler ran, so a handler that refuses the request (401, 413) still paid for
the body, and ``Expect: 100-continue`` was answered before anyone had accepted it. Now
the request is dispatched as soon as its head is complete and its body arrives through a
:class:`RequestBody` at ``request.body``, which any protocol can feed (HTTP/1.1 today;
HTTP/2 and HTTP/3 adopt it the same way).

Protocol side (the connection), through a :class:`BodySource` it passes in:

- ``RequestBody(source, length, limit)``: ``length`` is the declared size (None when
  unknown, e.g. chunked or an h2 stream without ``content-length``), ``limit`` the most
  the server will read (None: no limit);
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
- :meth:`RequestBody.limit_to` lowers the limit before reading (``request_body``
  ``max_size``); a body whose declared length is already over it fails at once.

A handler that answers without reading leaves the body to the connection, which drains
a little of it (:data:`DRAIN_BYTES`) to keep the connection or else closes it.
"""

from __future__ import annotations

import tempfile
from collections import deque
from io import BytesIO
from typing import IO, Protocol

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
        if limit is not None and length is not None and length > limit:
            self._fail(BodyTooLarge(limit))  # refused before a byte is read

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

    def limit_to(self, limit: int) -> None:
        """Lower the limit (``request_body`` ``max_size``); fails now if the declared
        length or what already arrived is over it."""
        if self.limit is None or limit < self.limit:
            self.limit = limit
        over = self.length if self.length is not None else self.received
        if over > limit and self.error is None and not self._ended:
            self._fail(BodyTooLarge(limit))

    def start(self, sink: BodySink) -> None:
        """Deliver the body to ``sink`` from now on (once per body)."""
        if self.sink is not None:
            raise RuntimeError("request body already being read")
        self.sink = sink
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
        if self.limit is not None and self.received > self.limit:
            self._fail(BodyTooLarge(self.limit))
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

    def limit_to(self, limit: int) -> None:
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
