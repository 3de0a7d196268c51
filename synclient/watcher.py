"""Local change notifications: watchdog's thread -> the reactor, debounced.

watchdog calls back on its own thread, so each event only hops into the reactor with
``callFromThread``; there the relative paths pile up and are handed to the engine after
``debounce`` seconds of quiet (a burst of writes becomes one scan). A created or moved-in
directory is handed over as a whole, because files written into it before inotify
watched it produce no events; the engine rescans such a path recursively. Events inside
the state folder and on temp files are dropped at once. The periodic full scan remains
the safety net for overflowed event queues.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from caddytw.sync.watching import content_events
from synclient.scanner import is_own_path

EVENTS = content_events()


def relative(root: str, path: str | bytes) -> str | None:
    """``path`` relative to ``root`` with ``/`` separators, or ``None`` when hidden/outside."""
    text = os.fsdecode(path)
    if not text.startswith(root + os.sep):
        return None
    rel = text[len(root) + 1 :].replace(os.sep, "/")
    return None if is_own_path(rel) else rel


class _Handler(FileSystemEventHandler):
    def __init__(self, root: str, deliver: Callable[[set[str]], None], reactor: Any) -> None:
        self.root = root
        self.deliver = deliver
        self.reactor = reactor

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = {event.src_path}
        if event.dest_path:
            paths.add(event.dest_path)
        found = {rel for rel in (relative(self.root, p) for p in paths) if rel}
        if found:
            self.reactor.callFromThread(self.deliver, found)


class Watcher:
    """Watches ``root`` recursively; ``on_paths`` gets sets of relative paths."""

    def __init__(
        self,
        root: Path,
        on_paths: Callable[[set[str]], None],
        debounce: float = 0.1,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.root = str(root.resolve())
        self.on_paths = on_paths
        self.debounce = debounce
        self.reactor = reactor
        self.pending: set[str] = set()
        self._timer: Any = None
        self._observer: Any = None

    def _collect(self, paths: set[str]) -> None:
        self.pending |= paths
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.debounce)
        else:
            self._timer = self.reactor.callLater(self.debounce, self._flush)

    def _flush(self) -> None:
        self._timer = None
        paths, self.pending = self.pending, set()
        if paths:
            self.on_paths(paths)

    def start(self) -> None:
        observer = Observer()
        observer.schedule(
            _Handler(self.root, self._collect, self.reactor),
            self.root,
            recursive=True,
            event_filter=EVENTS,
        )
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
