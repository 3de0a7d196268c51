"""Download plumbing: ``Range`` parsing and a pull producer that streams part of a file.

The producer reads one chunk each time the transport asks, so memory stays flat for
any file size and a slow client slows the reads instead of filling buffers.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from caddytw.http.request import transport_of

#: Bytes read per turn. A pull producer is asked for more only once the transport's
#: buffer is empty, so each turn is a wake-up of a loaded machine's scheduler: 1 MiB
#: makes 1,024 of them per GiB instead of 4,096 (memory per download stays 1 MiB).
CHUNK = 1024 * 1024


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=`` range as ``(start, end_inclusive)``.

    ``None``: ignore the header and send everything (malformed or several ranges, as
    RFC 9110 allows). ``"unsatisfiable"``: answer 416.
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            if not last.isdigit():
                return None
            length = int(last)
            if length == 0:
                return "unsatisfiable"
            return (max(0, size - length), size - 1) if size else "unsatisfiable"
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)


@implementer(IPullProducer)
class FileRangeProducer:
    """Writes ``length`` bytes of ``source`` from ``start`` into ``request``, then finishes
    it; ``done`` fires when it is over (either way) and the file is closed."""

    def __init__(self, source: BinaryIO, start: int, length: int, request: Any) -> None:
        self.source = source
        self.remaining = length
        self.request = request
        self.done: Deferred[None] = Deferred()
        source.seek(start)

    def begin(self) -> Deferred[None]:
        self.request.registerProducer(self, False)
        return self.done

    def resumeProducing(self) -> None:
        if self.remaining <= 0 or self.source.closed:
            self._finish(True)
            return
        chunk = self.source.read(min(CHUNK, self.remaining))
        if not chunk:  # the file shrank under us: the response is short, drop it
            self._finish(False)
            return
        self.remaining -= len(chunk)
        self.request.write(chunk)
        if self.remaining <= 0:
            self._finish(True)

    def stopProducing(self) -> None:
        self._finish(False)

    def _finish(self, complete: bool) -> None:
        if self.done.called:
            return
        finish_response(self.source, self.request, self, complete)
        self.done.callback(None)


def finish_response(source: BinaryIO, request: Any, producer: object, complete: bool) -> None:
    """End a streamed file answer: close the file, drop the producer, then finish the
    response, or abort the connection when it is incomplete (a short body must not
    look like a whole one)."""
    source.close()
    if request.producer is producer:
        request.unregisterProducer()
    if not request.client_gone:
        if complete:
            request.finish()
        else:
            transport_of(request).abortConnection()
