"""A one-line progress bar for long syncs: files, bytes, rate and ETA.

It draws only on a terminal (``stream.isatty()``) and at most ten times a second; when
output goes to a file or pipe it stays silent, so logs are not filled with bars. The
clock is injected so the arithmetic is testable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


class Board:
    """The one status line of a process, shared by every folder and server it syncs.

    Each running pass has a :class:`Progress`; the line shows all of them, each named by
    its label (``folder @ server``). A pass that ends leaves its final line above the
    status line, so the terminal keeps a record of what each pass did."""

    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.enabled = stream.isatty() if enabled is None else enabled
        self.active: list[Progress] = []
        self._drawn = 0.0

    def line(self) -> str:
        return "  |  ".join(p.line() for p in self.active)

    def draw(self, force: bool = False) -> None:
        if not self.enabled or not self.active:
            return
        now = self.clock()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()

    def begin(self, progress: Progress) -> None:
        if progress not in self.active:
            self.active.append(progress)

    def end(self, progress: Progress) -> None:
        if progress not in self.active:
            return
        if self.enabled:
            self.stream.write("\r\x1b[K" + progress.line() + "\n")
        self.active.remove(progress)
        if self.enabled:
            self.draw(force=True)
            self.stream.flush()


class Progress:
    """One pass's files and bytes, drawn on its :class:`Board` (its own by default)."""

    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool | None = None,
        *,
        label: str = "",
        board: Board | None = None,
    ) -> None:
        self.board = board or Board(stream, clock, enabled)
        self.clock = self.board.clock
        self.label = label
        self.total_files = self.total_bytes = 0
        self.files = self.bytes = 0
        self.started = self.clock()

    def start(self, files: int, size: int) -> None:
        self.total_files, self.total_bytes = files, size
        self.files = self.bytes = 0
        self.started = self.clock()
        if files:
            self.board.begin(self)

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        self.board.draw()

    def file_done(self, path: str, size: int) -> None:
        self.files += 1
        self.board.draw()

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = self.bytes / elapsed
        left = max(self.total_bytes - self.bytes, 0)
        eta = duration(left / rate) if rate > 0 and self.total_bytes else "--:--"
        return (
            (f"{self.label}: " if self.label else "") + f"{self.files}/{self.total_files} files  "
            f"{human(self.bytes)}/{human(self.total_bytes)}  "
            f"{human(rate)}/s  ETA {eta}"
        )

    def finish(self) -> None:
        self.board.end(self)
        self.total_files = 0
