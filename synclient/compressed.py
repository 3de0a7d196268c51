"""zstd upload bodies: a Twisted body producer that reads and compresses in a thread.

Used by :mod:`synclient.remote` when the server said (``Accept-Encoding: zstd`` in any
answer) that it takes zstd bodies and a sample of the file compresses. The producer
pauses with the transport, so memory is one chunk and the zstd window for any size,
and the reactor thread only hands finished pieces to the socket.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from caddytw.sync.compression import Encoder

CHUNK = 256 * 1024


@implementer(IBodyProducer)
class CompressedBodyProducer:
    """``size`` bytes of ``source`` from its current position, zstd-encoded.

    ``length`` is unknown (the request goes out chunked). ``sent`` counts what went
    on the wire, ``read`` what came from the file.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, source: BinaryIO, size: int, reactor: Any) -> None:
        self.source = source
        self.remaining = size
        self.reactor = reactor
        self.encoder = Encoder(size=size)
        self.sent = 0
        self._consumer: Any = None
        self._done: Deferred[None] | None = None
        self._paused = False
        self._busy = False
        self._stopped = False

    def startProducing(self, consumer: Any) -> Deferred[None]:
        self._consumer = consumer
        self._done = Deferred()
        self._next()
        return self._done

    def _step(self) -> tuple[bytes, bool]:
        data = self.source.read(min(CHUNK, self.remaining)) if self.remaining > 0 else b""
        self.remaining -= len(data)
        if not data or self.remaining <= 0:
            return self.encoder.encode(data) + self.encoder.finish(), True
        return self.encoder.encode(data), False

    def _next(self) -> None:
        if self._busy or self._paused or self._stopped or self._done is None:
            return
        self._busy = True
        working = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._step)
        working.addCallbacks(self._got, self._failed)

    def _got(self, result: tuple[bytes, bool]) -> None:
        self._busy = False
        if self._stopped or self._done is None or self._done.called:
            return
        out, finished = result
        if out:
            self.sent += len(out)
            self._consumer.write(out)
        if finished:
            self._done.callback(None)
        else:
            self._next()

    def _failed(self, failure: Any) -> None:
        self._busy = False
        if self._done is not None and not self._done.called:
            self._done.errback(failure)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._next()

    def stopProducing(self) -> None:
        self._stopped = True
