"""Local change notifications: watchdog's thread -> the reactor, debounced (the
watching itself is :mod:`caddytw.sync.localfs`, shared with the server).

watchdog calls back on its own thread, so each event only hops into the reactor with
``callFromThread``; there the relative paths pile up and are handed to the engine after
``debounce`` seconds of quiet (a burst of writes becomes one scan), or at once when a
file was closed after writing (``IN_CLOSE_WRITE``) or moved into place. A created or moved-in
directory is handed over as a whole, because files written into it before inotify
watched it produce no events; the engine rescans such a path recursively. Events inside
the state folder and on temp files are dropped at once. The periodic full scan remains
the safety net for overflowed event queues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from caddytw.sync.localfs import PathBatcher, start_watch
from synclient.scanner import is_hidden


class OnPaths(Protocol):
    def __call__(self, paths: set[str], *, finished: set[str]) -> None: ...


class Watcher:
    """Watches ``root`` recursively; ``on_paths`` gets sets of relative paths, and
    among them those known to be complete (closed after writing, or moved in), which
    the engine uploads without waiting for a settle window."""

    def __init__(
        self,
        root: Path,
        on_paths: OnPaths,
        debounce: float = 0.1,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.root = str(root.resolve())
        self.on_paths = on_paths
        self.reactor = reactor
        self.batch = PathBatcher(reactor, debounce, self._deliver)
        self._observer: Any = None

    def _deliver(self, paths: set[str], _folders: set[str], finished: set[str]) -> None:
        # A new folder is rescanned whole by the engine anyway.
        self.on_paths(paths, finished=finished)

    def start(self) -> None:
        self._observer = start_watch(self.root, is_hidden, self.batch.add, self.reactor)

    def stop(self) -> None:
        self.batch.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
