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


class Progress:
    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.enabled = stream.isatty() if enabled is None else enabled
        self.total_files = self.total_bytes = 0
        self.files = self.bytes = 0
        self.started = clock()
        self._drawn = 0.0

    def start(self, files: int, size: int) -> None:
        self.total_files, self.total_bytes = files, size
        self.files = self.bytes = 0
        self.started = self.clock()

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        self.draw()

    def file_done(self, path: str, size: int) -> None:
        self.files += 1
        self.draw()

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = self.bytes / elapsed
        left = max(self.total_bytes - self.bytes, 0)
        eta = duration(left / rate) if rate > 0 and self.total_bytes else "--:--"
        return (
            f"{self.files}/{self.total_files} files  "
            f"{human(self.bytes)}/{human(self.total_bytes)}  "
            f"{human(rate)}/s  ETA {eta}"
        )

    def draw(self, force: bool = False) -> None:
        if not self.enabled or self.total_files == 0:
            return
        now = self.clock()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.total_files:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
        self.total_files = 0
