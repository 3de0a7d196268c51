"""A large download's body written and hashed by one thread of its own.

Receiving is the reactor thread's job; writing to disk and SHA-256 hashing were too, and a
py-spy of a 1 GiB download found them at ~60% of that thread. Here the reactor thread only
gathers the body's chunks into hand-offs of about :data:`HANDOFF` bytes and queues them;
a writer thread hashes and writes them (both release the GIL), so receiving overlaps
with writing. Memory stays bounded: when more than :data:`HIGH_WATER` bytes wait for the
writer, the response's transport is paused (the socket is no longer read, TCP pushes back
on the server), and resumed once the writer is down to :data:`LOW_WATER`. The reactor
thread never waits for the writer; the writer wakes it only to resume, to report a
failure, or to say it is done.

Every :data:`WRITEBACK_EVERY` bytes one ``fdatasync`` runs in a helper thread while
writing goes on, so the ``fsync`` before the rename finds little left to write. Nothing
here makes the file visible: it writes the caller's temp file, and the caller checks the
digest before any rename.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred

#: Bytes gathered on the reactor thread before one hand-off to the writer (one queue
#: operation and one ``writev`` per MiB instead of one per 64 KiB socket read).
HANDOFF = 1 << 20
#: Above this many bytes waiting for the writer, the response's transport is paused.
HIGH_WATER = 8 << 20
#: ... and resumed once no more than this many are left.
LOW_WATER = 2 << 20
#: Bytes of a download written between two background ``fdatasync`` calls.
WRITEBACK_EVERY = 32 << 20
#: ``writev`` takes at most IOV_MAX (1,024 on Linux) buffers; more are joined first.
MAX_BUFFERS = 512


class TooLong(Exception):
    """The body is longer than the size the listing gave."""


class BodyWriter:
    """Writes and hashes one download body into ``handle`` (positioned where the body
    starts) in a thread of its own. :meth:`write` and the rest run on the reactor thread.

    ``limit``: the most body bytes accepted (more fails the download). ``on_bytes`` is
    told of every chunk as it arrives (progress).
    """

    def __init__(
        self,
        reactor: Any,
        handle: BinaryIO,
        digest: Any,
        limit: int,
        on_bytes: Callable[[int], None] | None = None,
        high_water: int = HIGH_WATER,
    ) -> None:
        self.reactor = reactor
        self.fd = handle.fileno()
        self.digest = digest
        self.limit = limit
        self.on_bytes = on_bytes
        self.high_water = high_water
        self.low_water = min(LOW_WATER, high_water // 4)
        self.received = 0
        #: The most bytes ever waiting for the writer (the memory bound, for tests).
        self.peak = 0
        #: What the writer thread failed with (it then stops writing).
        self.error: BaseException | None = None
        self.transport: Any = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queue: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0  # handed off, not yet written (under _lock)
        self._paused = False  # under _lock
        self._discard = False  # abandoned: drop what is queued
        self._fsync = False
        self._done: Deferred[None] = Deferred()
        self._closed = False
        self._hash_queue: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        for work, name in ((self._run, "download-writer"), (self._hash, "download-hasher")):
            threading.Thread(target=work, name=name, daemon=True).start()

    # -- reactor thread -----------------------------------------------------------------

    def attach(self, transport: Any) -> None:
        """The response body's transport, to pause and resume (a push producer)."""
        self.transport = transport

    def write(self, data: bytes) -> None:
        """One chunk of the body as it arrives. Raises what the writer failed with (the
        caller then drops the connection) or :class:`TooLong`."""
        if self.error is not None:
            raise self.error
        self.received += len(data)
        if self.received > self.limit:
            raise TooLong(f"more than the {self.limit} bytes expected")
        self._pending.append(data)
        self._pending_size += len(data)
        if self.on_bytes is not None:
            self.on_bytes(len(data))
        if self._pending_size >= HANDOFF:
            self._hand_off()

    def _hand_off(self) -> None:
        if not self._pending:
            return
        chunks, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        with self._lock:
            self._queued += size
            self.peak = max(self.peak, self._queued)
            pause = self._queued > self.high_water and not self._paused
            if pause:
                self._paused = True
        self._queue.put(chunks)
        if pause and self.transport is not None:
            self.transport.pauseProducing()

    def _resume(self) -> None:
        """From the writer, through ``callFromThread``: it has drained enough (or it
        failed: the next chunk then raises its error and the connection is dropped)."""
        if self.transport is not None and not self._closed:
            self.transport.resumeProducing()

    async def close(self, fsync: bool) -> None:
        """The body is complete: wait until all of it is written (and, with ``fsync``,
        durable); raise what the writer failed with."""
        self._hand_off()
        self._fsync = fsync
        self._finish()
        await self._done
        if self.error is not None:
            raise self.error

    async def abandon(self) -> None:
        """Give up: the writer drops what is still queued and stops. What it wrote is a
        prefix of the body (writes are sequential), usable to resume."""
        self._discard = True
        self._pending, self._pending_size = [], 0
        self._finish()
        with contextlib.suppress(BaseException):  # the caller is raising its own error
            await self._done

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    # -- writer and hasher threads ------------------------------------------------------

    def _run(self) -> None:
        """The writer: each hand-off in one ``writev``, then on to the hasher (hashing
        and writing run side by side, each in its own thread, as both release the GIL)."""
        writeback: threading.Thread | None = None
        failures: list[BaseException] = []
        unsynced = 0
        try:
            while (chunks := self._queue.get()) is not None:
                if self.error is None and not self._discard:
                    try:
                        _write_all(self.fd, chunks)
                    except BaseException as error:
                        self.error = error
                    unsynced += sum(map(len, chunks))
                    idle = writeback is None or not writeback.is_alive()
                    if unsynced >= WRITEBACK_EVERY and idle:
                        unsynced = 0
                        writeback = threading.Thread(
                            target=_datasync, args=(self.fd, failures), daemon=True
                        )
                        writeback.start()
                self._hash_queue.put(chunks)
            if writeback is not None:
                writeback.join()
            if self.error is None and failures:
                self.error = failures[0]
            if self.error is None and self._fsync and not self._discard:
                os.fsync(self.fd)
        except BaseException as error:
            if self.error is None:
                self.error = error
        self._hash_queue.put(None)

    def _hash(self) -> None:
        """The hasher: the body's SHA-256 in order, then the hand-off's memory is
        released (it counts as queued until both threads are done with it)."""
        try:
            while (chunks := self._hash_queue.get()) is not None:
                if self.error is None and not self._discard:
                    for chunk in chunks:
                        self.digest.update(chunk)
                size = sum(map(len, chunks))
                with self._lock:
                    self._queued -= size
                    wake = self._paused and (
                        self._queued <= self.low_water or self.error is not None
                    )
                    if wake:
                        self._paused = False
                if wake:
                    self.reactor.callFromThread(self._resume)
        except BaseException as error:
            if self.error is None:
                self.error = error
        self.reactor.callFromThread(self._done.callback, None)


def _datasync(fd: int, failures: list[BaseException]) -> None:
    try:
        os.fdatasync(fd)
    except OSError as error:  # a write-back error fails the download
        failures.append(error)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """All of ``chunks`` at the file position, in one ``writev`` when it takes them."""
    if len(chunks) > MAX_BUFFERS:
        chunks = [b"".join(chunks)]
    total = sum(map(len, chunks))
    done = os.writev(fd, chunks)
    if done < total:
        rest = memoryview(b"".join(chunks))[done:]
        while rest:
            rest = rest[os.write(fd, rest) :]
