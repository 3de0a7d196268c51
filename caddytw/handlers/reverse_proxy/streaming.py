"""Bodies through the proxy, both ways, with backpressure.

* :class:`StreamingBodyProducer` forwards a request body with a known length as it
  arrives from the client, with backpressure both ways.
* :class:`ReplayableBodyProducer` sends a body collected first (a chunked one, whose
  length the upstream request needs, or an Upgrade request's) in 64 KiB chunks,
  pausing when the upstream socket is full, and can be started again for a retry.
* :class:`ResponseRelay` receives the upstream response body (``response.deliverBody``)
  and writes it to the client. The upstream transport is registered as the client
  request's streaming producer: when the client's socket buffer fills, Twisted pauses the
  upstream socket, so a huge response to a slow client stays in the kernel buffers and
  the proxy's memory stays flat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from twisted.internet import task
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from caddytw.http.body import BodyAborted, RequestBody
from caddytw.http.sniff import name_untyped_body

CHUNK = 64 * 1024
#: Largest amount a positive ``flush_interval`` collects before writing anyway.
COALESCE_LIMIT = 32 * 1024


def body_length(content: IO[bytes] | None) -> int:
    """The size of a spooled request body (0 when there is none)."""
    if content is None:
        return 0
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    return size


def cooperator_for(reactor: Any) -> task.Cooperator:
    """A Cooperator scheduled on the given reactor (not the global one)."""
    return task.Cooperator(scheduler=lambda work: reactor.callLater(0, work))


@implementer(IBodyProducer)
class ReplayableBodyProducer:
    """Streams a seekable file to the upstream; restartable for retries.

    ``write_timeout`` aborts the upload when the upstream keeps the producer paused (does
    not read) for that long.
    """

    def __init__(
        self,
        content: IO[bytes],
        length: int,
        cooperator: task.Cooperator,
        reactor: Any,
        write_timeout: float | None = None,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self.content = content
        self.length = length
        self.cooperator = cooperator
        self.reactor = reactor
        self.write_timeout = write_timeout
        self.on_written = on_written
        self._task: Any = None
        self._stall: Any = None
        self._consumer: Any = None

    def _chunks(self, consumer: Any) -> Iterator[None]:
        self.content.seek(0)
        remaining = self.length
        while remaining > 0:
            data = self.content.read(min(CHUNK, remaining))
            if not data:
                raise OSError("request body ended early")
            remaining -= len(data)
            consumer.write(data)
            yield None

    def startProducing(self, consumer: Any) -> Deferred[None]:
        self._consumer = consumer
        self._task = self.cooperator.cooperate(self._chunks(consumer))
        done: Deferred[None] = self._task.whenDone()

        def finished(result: Any) -> Any:
            self._cancel_stall()
            if self.on_written is not None:
                self.on_written()
            return None

        def failed(reason: Failure) -> Failure:
            self._cancel_stall()
            if reason.check(task.TaskStopped):
                return Failure(ConnectionAbortedError("request body upload stopped"))
            return reason

        return done.addCallbacks(finished, failed)

    def pauseProducing(self) -> None:
        if self._task is not None:
            self._task.pause()
        if self.write_timeout and self._stall is None:
            self._stall = self.reactor.callLater(self.write_timeout, self._stalled)

    def resumeProducing(self) -> None:
        self._cancel_stall()
        if self._task is not None:
            self._task.resume()

    def stopProducing(self) -> None:
        self._cancel_stall()
        if self._task is not None:
            with contextlib.suppress(task.TaskDone, task.TaskFailed, task.TaskStopped):
                self._task.stop()

    def _stalled(self) -> None:
        self._stall = None
        self.stopProducing()

    def _cancel_stall(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None


@implementer(IBodyProducer)
class StreamingBodyProducer:
    """Forwards a request body to the upstream as it arrives from the client.

    The client's :class:`~caddytw.http.body.RequestBody` is the push producer: when the
    upstream socket is full it is paused, its buffer fills and the client's socket is
    paused in turn, so a large upload never sits in memory or on disk. It can be sent
    once: a retry after bytes left (``started``) is refused. ``write_timeout`` aborts
    the upload when the upstream keeps it paused that long.
    """

    def __init__(
        self,
        body: RequestBody,
        reactor: Any,
        write_timeout: float | None = None,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self.body = body
        self.length = body.length
        self.reactor = reactor
        self.write_timeout = write_timeout
        self.on_written = on_written
        self._consumer: Any = None
        self._done: Deferred[None] | None = None
        self._stall: Any = None

    def startProducing(self, consumer: Any) -> Deferred[None]:
        if self.body.started:
            return fail(BodyAborted("the request body was already sent upstream"))
        self._consumer = consumer
        # Kept apart from ``self._done``: a body that already arrived whole is delivered
        # (and ended, clearing ``_done``) inside ``start``.
        done: Deferred[None] = Deferred()
        self._done = done
        self.body.start(self)
        return done

    def body_data(self, data: bytes) -> None:
        if self._consumer is not None:
            self._consumer.write(data)

    def body_end(self, error: BaseException | None) -> None:
        self._cancel_stall()
        done, self._done = self._done, None
        if done is None:
            return
        if error is not None:
            done.errback(error)
            return
        if self.on_written is not None:
            self.on_written()
        done.callback(None)

    def pauseProducing(self) -> None:
        self.body.pauseProducing()
        if self.write_timeout and self._stall is None:
            self._stall = self.reactor.callLater(self.write_timeout, self._stalled)

    def resumeProducing(self) -> None:
        self._cancel_stall()
        self.body.resumeProducing()

    def stopProducing(self) -> None:
        """The upstream is gone: drop the rest (the Deferred never fires, as
        ``IBodyProducer`` asks)."""
        self._cancel_stall()
        self._done = None
        self._consumer = None
        self.body.stopProducing()

    def _stalled(self) -> None:
        self._stall = None
        done, self._done = self._done, None
        self.stopProducing()
        if done is not None:
            done.errback(ConnectionAbortedError("upstream did not read the request body"))

    def _cancel_stall(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None


class ResponseRelay(Protocol):
    """Copies an upstream response body to the client request, flow-controlled.

    ``flush_interval``: negative (or a ``text/event-stream`` / unknown-length response)
    writes every chunk as it arrives; 0 writes every chunk too (Twisted transports never
    hold data back); a positive interval collects up to 32 KiB for at most that long.
    ``read_timeout`` drops the upstream when it sends nothing for that long.
    ``on_done`` is called once the body ended: with None when it is complete, or with
    the failure (a direct call: a Deferred per response showed in the proxy's profile).
    """

    def __init__(
        self,
        request: Any,
        reactor: Any,
        on_done: Callable[[Failure | None], object],
        *,
        flush_interval: float = 0.0,
        read_timeout: float | None = None,
    ) -> None:
        self.request = request
        self.reactor = reactor
        self.on_done = on_done
        self.flush_interval = flush_interval
        self.read_timeout = read_timeout
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_call: Any = None
        self._read_call: Any = None
        self._registered = False
        self.transport: Any = None

    def connectionMade(self) -> None:
        if IPushProducer.providedBy(self.transport) and not self.request.client_gone:
            self.request.registerProducer(self.transport, True)
            self._registered = True
        self._arm_read_timer()

    def dataReceived(self, data: bytes) -> None:
        self._arm_read_timer()
        if self.request.client_gone:
            return
        if self.flush_interval <= 0:
            if self.flush_interval == 0:
                # An untyped body gets Go's guess from its first bytes, as Caddy's does;
                # with a negative interval Caddy flushes the head before any body
                # (streams, unknown lengths), so there is nothing to guess from.
                name_untyped_body(self.request, data)
            self.request.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= COALESCE_LIMIT:
            self._flush()
        elif self._flush_call is None:
            self._flush_call = self.reactor.callLater(self.flush_interval, self._flush)

    def _flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if self._pending and not self.request.client_gone:
            data = b"".join(self._pending)
            name_untyped_body(self.request, data)
            self.request.write(data)
        self._pending = []
        self._pending_size = 0

    def _arm_read_timer(self) -> None:
        if not self.read_timeout:
            return
        if self._read_call is not None and self._read_call.active():
            self._read_call.reset(self.read_timeout)
            return
        self._read_call = self.reactor.callLater(self.read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self._read_call = None
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if self._read_call is not None and self._read_call.active():
            self._read_call.cancel()
        self._flush()
        if self._registered and not self.request.client_gone:
            self.request.unregisterProducer()
        self.on_done(None if reason.check(ResponseDone, PotentialDataLoss) else reason)

    def stop(self) -> None:
        """The client left: drop the upstream connection (the body cannot be reused)."""
        if self.transport is not None:
            self.transport.stopProducing()
