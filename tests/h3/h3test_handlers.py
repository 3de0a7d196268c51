"""``h3test_blob``: a large deterministic body, streamed through a producer.

``{"handler": "h3test_blob", "size": N, "mode": "push"|"pull", "delay": seconds}``:
``push`` writes chunks from the reactor while not paused (a streaming producer),
``pull`` hands twisted.web's own ``NoRangeStaticProducer`` a lazy file-like object.
``delay`` holds the whole response back so it is written from a timer, outside any
network input (the "response written later from a Deferred" path).
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import NOT_DONE_YET
from twisted.web.static import NoRangeStaticProducer

from caddytw.http.routing import LeafResource

CHUNK = 64 * 1024
_BLOCK = bytes(range(256)) * 256  # 64 KiB, the same pattern h3client.pattern makes


def pattern_slice(start: int, size: int) -> bytes:
    """Bytes ``start .. start+size`` of the endless repeating pattern."""
    out = bytearray()
    while size > 0:
        offset = start % len(_BLOCK)
        piece = _BLOCK[offset : offset + size]
        out += piece
        start += len(piece)
        size -= len(piece)
    return bytes(out)


class PatternFile:
    """A read-only file of ``size`` pattern bytes, produced on demand."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0

    def read(self, n: int) -> bytes:
        n = max(0, min(n, self.size - self.position))
        data = pattern_slice(self.position, n)
        self.position += n
        return data

    def close(self) -> None:
        pass


class PushBlob:
    """A streaming producer writing from the reactor while not paused."""

    def __init__(self, request: Any, size: int, reactor: Any) -> None:
        self.request = request
        self.left = size
        self.sent = 0
        self.reactor = reactor
        self.paused = False
        self.stopped = False
        self.call: Any = None

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self.schedule()

    def schedule(self) -> None:
        if self.call is None and not self.paused and not self.stopped:
            self.call = self.reactor.callLater(0, self.produce)

    def produce(self) -> None:
        self.call = None
        for _ in range(16):
            if self.paused or self.stopped:
                return
            if self.left == 0:
                self.request.unregisterProducer()
                self.request.finish()
                self.stopped = True
                return
            n = min(CHUNK, self.left)
            self.request.write(pattern_slice(self.sent, n))
            self.sent += n
            self.left -= n
        self.schedule()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.schedule()

    def stopProducing(self) -> None:
        self.stopped = True
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None


class Blob(LeafResource):
    def __init__(self, size: int, mode: str, delay: float, reactor: Any) -> None:
        self.size = size
        self.mode = mode
        self.delay = delay
        self.reactor = reactor

    def render(self, request: Any) -> Any:
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"content-length", b"%d" % self.size)
        if self.delay:
            call = self.reactor.callLater(self.delay, self.start, request)
            request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
        else:
            self.start(request)
        return NOT_DONE_YET

    def start(self, request: Any) -> None:
        if request.client_gone:
            return
        if request.method == b"HEAD":
            request.finish()
            return
        if self.mode == "pull":
            NoRangeStaticProducer(request, PatternFile(self.size)).start()
        else:
            PushBlob(request, self.size, self.reactor).start()


def build(config: Any, context: Any, next: Any) -> Blob:
    size = config.integer("size", 0, minimum=0)
    mode = config.text("mode", "push") or "push"
    delay = config.number("delay", 0.0)
    config.done()
    return Blob(size, mode, delay, context.reactor)
