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

from caddytw.sync.encoded import EncodingPump


@implementer(IBodyProducer)
class CompressedBodyProducer:
    """``size`` bytes of ``source`` from its current position, zstd-encoded by an
    :class:`~caddytw.sync.encoded.EncodingPump`. ``length`` is unknown (the request
    goes out chunked)."""

    length = UNKNOWN_LENGTH

    def __init__(self, source: BinaryIO, size: int, reactor: Any) -> None:
        self.source = source
        self.size = size
        self.reactor = reactor
        self.pump: EncodingPump | None = None
        self.stopped = False

    def _in_thread(self, work: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), work)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        done: Deferred[None] = Deferred()

        def finished(ok: bool) -> None:
            if self.stopped:
                return  # the request is being torn down: nobody waits on this any more
            if ok:
                done.callback(None)
            else:
                done.errback(OSError(f"{self.source.name}: changed while it was being sent"))

        self.pump = EncodingPump(self.source, self.size, self._in_thread, consumer.write, finished)
        self.pump.resume()
        return done

    def pauseProducing(self) -> None:
        if self.pump is not None:
            self.pump.pause()

    def resumeProducing(self) -> None:
        if self.pump is not None:
            self.pump.resume()

    def stopProducing(self) -> None:
        self.stopped = True
        if self.pump is not None:
            self.pump.stop()
