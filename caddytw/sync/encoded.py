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

from caddytw.sync.compression import (
    ENCODING,
    MIN_SIZE,
    Encoder,
    sample_of,
    worth_compressing,
)
from caddytw.sync.transfer import finish_response

CHUNK = 256 * 1024

RunInThread = Callable[[Callable[[], Any]], "Deferred[Any]"]


def should_compress(source: BinaryIO, size: int) -> bool:
    """The sample decision for an open file (blocking: call it in a thread)."""
    return size >= MIN_SIZE and worth_compressing(sample_of(source, size))


def file_worth_compressing(path: str | os.PathLike[str]) -> bool:
    """:func:`should_compress` for a path (blocking)."""
    with open(path, "rb") as source:
        return should_compress(source, os.fstat(source.fileno()).st_size)


class EncodingPump:
    """Reads ``size`` bytes of ``source`` (from where it stands) and zstd-encodes them,
    one chunk per ``run_in_thread`` call, handing output to ``emit`` in the reactor
    thread; ``finished(ok)`` once at the end (``ok`` false: the file ended early or a
    read failed). ``pause``/``resume``/``stop`` follow the transport. Shared by the
    server's download producer and the client's upload body producer."""

    def __init__(
        self,
        source: BinaryIO,
        size: int,
        run_in_thread: RunInThread,
        emit: Callable[[bytes], None],
        finished: Callable[[bool], None],
    ) -> None:
        self.source = source
        self.remaining = size
        self.run_in_thread = run_in_thread
        self.emit = emit
        self.finished = finished
        self.encoder = Encoder(size=size)
        self.sent = 0
        self._paused = False
        self._busy = False
        self._stopped = False
        self._over = False

    def _step(self) -> tuple[bytes, bool]:
        """One chunk read and encoded (thread). Returns (output, last)."""
        data = self.source.read(min(CHUNK, self.remaining)) if self.remaining > 0 else b""
        if not data and self.remaining > 0:
            raise EOFError("the file shrank while it was being sent")
        self.remaining -= len(data)
        out = self.encoder.encode(data)
        if self.remaining <= 0:
            return out + self.encoder.finish(), True
        return out, False

    def resume(self) -> None:
        self._paused = False
        if self._busy or self._stopped or self._over:
            return
        self._busy = True
        working = self.run_in_thread(self._step)
        working.addCallbacks(self._got, self._failed)

    def pause(self) -> None:
        self._paused = True

    def stop(self) -> None:
        self._stopped = True
        if not self._busy:
            self._end(False)

    def _got(self, result: tuple[bytes, bool]) -> None:
        self._busy = False
        if self._stopped:
            self._end(False)
            return
        out, last = result
        if out:
            self.sent += len(out)
            self.emit(out)
        if last:
            self._end(True)
        elif not self._paused:
            self.resume()

    def _failed(self, _failure: Failure) -> None:
        self._busy = False
        self._end(False)

    def _end(self, ok: bool) -> None:
        if not self._over:
            self._over = True
            self.finished(ok)


@implementer(IPushProducer)
class CompressedFileProducer:
    """Writes ``source`` (``size`` bytes from its start) zstd-encoded into ``request``,
    then finishes it; ``done`` fires when it is over either way and the file is closed.
    A file that shrank underneath aborts the connection (the client's hash check
    would refuse the short body anyway)."""

    def __init__(
        self, source: BinaryIO, size: int, request: Any, run_in_thread: RunInThread
    ) -> None:
        source.seek(0)
        self.source = source
        self.request = request
        self.pump = EncodingPump(source, size, run_in_thread, request.write, self._finish)
        self.done: Deferred[None] = Deferred()

    def begin(self) -> Deferred[None]:
        self.request.setHeader(b"content-encoding", ENCODING.encode("ascii"))
        self.request.registerProducer(self, True)
        self.pump.resume()
        return self.done

    def pauseProducing(self) -> None:
        self.pump.pause()

    def resumeProducing(self) -> None:
        self.pump.resume()

    def stopProducing(self) -> None:
        self.pump.stop()

    def _finish(self, complete: bool) -> None:
        finish_response(self.source, self.request, self, complete)
        self.done.callback(None)
