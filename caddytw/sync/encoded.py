"""zstd on the server's wire: which answers are compressed, and the producer that does it.

Policy (one place, so downloads and batches agree):

- only a whole-file ``200`` is compressed; a ``Range`` request gets identity bytes,
  because a range of a compressed stream is not a range of the file and resuming
  needs offsets in the file;
- only when the client sent ``Accept-Encoding: zstd`` and a sample of the file
  compresses (:func:`caddytw.sync.compression.worth_compressing`): random or already
  compressed data goes out as it is, at full speed;
- the ``ETag`` and ``X-Content-SHA256`` stay the SHA-256 of the file (the identity
  bytes), so ``If-Match``/``If-None-Match`` mean the same with or without compression;
  ``Vary: Accept-Encoding`` tells caches the body differs.

Reading and compressing happen in a thread, one chunk at a time, paced by the
transport (a push producer that stops while the socket is full): the reactor thread
only writes the result, and memory holds one chunk and the zstd window.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from caddytw.http.request import transport_of
from caddytw.sync.compression import (
    ENCODING,
    MIN_SIZE,
    Encoder,
    sample_of,
    worth_compressing,
)

CHUNK = 256 * 1024

RunInThread = Callable[[Callable[[], Any]], "Deferred[Any]"]


def should_compress(source: BinaryIO, size: int) -> bool:
    """The sample decision for an open file (blocking: call it in a thread)."""
    return size >= MIN_SIZE and worth_compressing(sample_of(source, size))


def file_worth_compressing(path: str | os.PathLike[str]) -> bool:
    """:func:`should_compress` for a path (blocking)."""
    with open(path, "rb") as source:
        return should_compress(source, os.fstat(source.fileno()).st_size)


@implementer(IPushProducer)
class CompressedFileProducer:
    """Writes ``source`` (``size`` bytes from its start) zstd-encoded into ``request``,
    then finishes it; ``done`` fires when it is over either way and the file is closed.
    A file that shrank underneath aborts the connection (the client's hash check
    would refuse the short body anyway)."""

    def __init__(
        self, source: BinaryIO, size: int, request: Any, run_in_thread: RunInThread
    ) -> None:
        self.source = source
        self.remaining = size
        self.request = request
        self.run_in_thread = run_in_thread
        self.encoder = Encoder(size=size)
        self.done: Deferred[None] = Deferred()
        self._paused = False
        self._busy = False
        self._stopped = False
        source.seek(0)

    def begin(self) -> Deferred[None]:
        self.request.setHeader(b"content-encoding", ENCODING.encode("ascii"))
        self.request.registerProducer(self, True)
        self._next()
        return self.done

    def _step(self) -> tuple[bytes, bool]:
        """One chunk read and encoded (thread). Returns (output, finished)."""
        data = self.source.read(min(CHUNK, self.remaining))
        if not data:
            raise EOFError("the file shrank while it was being sent")
        self.remaining -= len(data)
        out = self.encoder.encode(data)
        if self.remaining <= 0:
            return out + self.encoder.finish(), True
        return out, False

    def _next(self) -> None:
        if self._busy or self._paused or self._stopped or self.done.called:
            return
        self._busy = True
        working = self.run_in_thread(self._step)
        working.addCallbacks(self._got, self._failed)

    def _got(self, result: tuple[bytes, bool]) -> None:
        self._busy = False
        if self._stopped:
            self._finish(False)
            return
        out, finished = result
        if out:
            self.request.write(out)
        if finished:
            self._finish(True)
        else:
            self._next()

    def _failed(self, _failure: Failure) -> None:
        self._busy = False
        self._finish(False)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._next()

    def stopProducing(self) -> None:
        self._stopped = True
        if not self._busy:
            self._finish(False)

    def _finish(self, complete: bool) -> None:
        if self.done.called:
            return
        self.source.close()
        if self.request.producer is self:
            self.request.unregisterProducer()
        if not self.request.client_gone:
            if complete:
                self.request.finish()
            else:
                transport_of(self.request).abortConnection()
        self.done.callback(None)
