"""Streaming a file body to a request, a bounded chunk at a time.

A body is a list of segments: literal bytes (multipart delimiters) and spans of an open
file. :class:`FileBodyProducer` is a pull producer: the consumer asks for data when its
buffer has drained, and each request is answered with at most one chunk read with
``pread``. Memory stays flat however large the file is, and no single read holds the
reactor for long. The file descriptor is closed on completion, on ``stopProducing`` and
when the client goes away.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from zope.interface import implementer

from caddytw.handlers.file_server.sendfile import send_span, sendfile_ready

log = Logger()

#: Bytes read per ``resumeProducing``: big enough to keep a socket busy, small enough that
#: a read from a cold disk does not stall other connections noticeably.
CHUNK_SIZE = 128 * 1024


@dataclass(frozen=True)
class Span:
    """``length`` bytes of the file from ``offset``."""

    offset: int
    length: int


Segment = bytes | Span


def body_length(segments: Sequence[Segment]) -> int:
    return sum(len(s) if isinstance(s, bytes) else s.length for s in segments)


@implementer(IPullProducer)
class FileBodyProducer:
    """Writes ``segments`` to ``request`` one chunk per ``resumeProducing``, then finishes it.

    Owns ``fd``: closes it exactly once whatever way the transfer ends.
    """

    def __init__(
        self, request: Any, fd: int, segments: Sequence[Segment], chunk_size: int = CHUNK_SIZE
    ) -> None:
        self.request = request
        self.fd: int | None = fd
        self.segments = list(segments)
        self.chunk_size = chunk_size
        self._index = 0
        self._done_in_segment = 0

    def start(self) -> None:
        """Send by ``os.sendfile`` when the connection allows it (plain TCP, no encoder),
        else register with the request and let the consumer pull."""
        self.request.notifyFinish().addErrback(lambda _: self._close())
        if sendfile_ready(self.request):
            self._send_segments()
            return
        self.request.registerProducer(self, False)

    def _send_segments(self, _: object = None) -> None:
        """Literal segments written, file spans copied by the kernel, one after another."""
        while self.fd is not None and self._index < len(self.segments):
            segment = self.segments[self._index]
            self._index += 1
            if isinstance(segment, bytes):
                if segment:
                    self.request.write(segment)
                continue
            sent = send_span(self.request, self.fd, segment.offset, segment.length)
            sent.addCallbacks(self._send_segments, self._sendfile_failed)
            return
        if self.fd is not None:
            self._close()
            if not self.request.client_gone:
                self.request.finish()

    def _sendfile_failed(self, failure: Any) -> None:
        if self.fd is None or self.request.client_gone:
            self._close()
            return
        log.warn("sendfile failed: {error}", error=failure.getErrorMessage())
        self._abort()

    def _next_chunk(self) -> bytes | None:
        """The next piece of the body (b"" when complete, None if the file shrank)."""
        while self._index < len(self.segments):
            segment = self.segments[self._index]
            if isinstance(segment, bytes):
                self._index += 1
                if segment:
                    return segment
                continue
            remaining = segment.length - self._done_in_segment
            if remaining <= 0:
                self._index += 1
                self._done_in_segment = 0
                continue
            assert self.fd is not None
            size = min(self.chunk_size, remaining)
            data = os.pread(self.fd, size, segment.offset + self._done_in_segment)
            if len(data) != size:
                return None
            self._done_in_segment += size
            return data
        return b""

    def resumeProducing(self) -> None:
        if self.fd is None:
            return
        try:
            data = self._next_chunk()
        except OSError as exc:
            log.warn("file read failed: {error}", error=exc)
            data = None
        if data is None:
            # The promised Content-Length can no longer be met: drop the connection so
            # the client sees a truncated transfer rather than wrong bytes.
            self._abort()
            return
        if data:
            self.request.write(data)
            if self._index < len(self.segments):
                return
        self._complete()

    def stopProducing(self) -> None:
        self._close()

    def _complete(self) -> None:
        self._close()
        self.request.unregisterProducer()
        if not self.request.client_gone:
            self.request.finish()

    def _abort(self) -> None:
        self._close()
        self.request.unregisterProducer()
        transport = getattr(self.request.channel, "transport", None)
        if transport is not None:
            transport.abortConnection()

    def _close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
