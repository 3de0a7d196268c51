"""Keeps the index in step with changes other programs make in the folder.

A watchdog observer reports touched paths (on its own thread; they hop to the reactor
with ``callFromThread``); they are collected for a short moment and refreshed
one by one. A folder that appears (created, or moved in) is rescanned below itself,
since a folder created and filled at once is only partly reported. "Folder modified"
events are ignored: watchdog sends one for the parent of every file event, which is
already reported on its own, and rescanning for each of them made every upload cost a
walk of the whole tree. A periodic full rescan is the safety net for missed events,
and old tombstones are purged once a day. The service also owns the store's
lifetime and closes the WebSocket connections when the server stops.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.sync.events import EventHub
from caddytw.sync.folder import hidden
from caddytw.sync.home import FolderUnavailable
from caddytw.sync.localfs import PathBatcher, start_watch
from caddytw.sync.store import LocalSyncStore

log = Logger()

TOMBSTONE_HORIZON = 30 * 24 * 3600.0
DEBOUNCE = 0.3


class SyncService(Service):
    """Starts the store, watches its folder, rescans periodically, stops it all."""

    def __init__(
        self,
        store: LocalSyncStore,
        hub: EventHub,
        reactor: Any,
        rescan_interval: float | None = 60.0,
        watch: bool = True,
    ) -> None:
        self.store = store
        self.hub = hub
        self.reactor = reactor
        self.rescan_interval = rescan_interval
        self.watch = watch
        self._batch = PathBatcher(reactor, DEBOUNCE, self._flush)
        self._busy: Deferred[Any] | None = None
        self._loops: list[LoopingCall] = []
        self._observer: Any = None
        self._unsubscribe: Any = None

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = self.store.subscribe(self.hub.publish)
        started = self.store.start()
        started.addCallback(self._started)
        started.addErrback(
            lambda f: log.failure("file_sync: could not open {root}", f, root=self.store.root)
        )

    def _started(self, rebuilt: bool) -> None:
        if rebuilt:
            log.info("file_sync: index for {root} built from the folder", root=self.store.root)
        if not self.running:
            return
        if self.rescan_interval:
            loop = LoopingCall(self._rescan_all)
            loop.clock = self.reactor
            loop.start(self.rescan_interval, now=False)
            self._loops.append(loop)
        purge = LoopingCall(self._purge)
        purge.clock = self.reactor
        purge.start(24 * 3600.0, now=False)
        self._loops.append(purge)
        self.store.on_available(self._watch)
        if self.store.problem is None:
            self._watch()

    def _watch(self) -> None:
        """(Re)start the watcher: at start, and when the folder is back (a remounted
        disk is a new folder to inotify)."""
        if not self.watch or not self.running:
            return
        self._stop_observer()
        self._start_observer()
        # Changes made between the start-up scan and the watcher's first watch
        # would otherwise wait for the periodic rescan: catch up once now.
        self._rescan_all()

    def _stop_observer(self) -> Any:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
        return observer

    def _start_observer(self) -> None:
        self._observer = start_watch(self.store.root, hidden, self.touched, self.reactor)

    def touched(self, path: str, new_folder: bool, finished: bool = False) -> None:
        """A path changed on disk (reactor thread): refresh it soon (at once when it
        was closed after writing), and everything below it when it is a folder that
        just appeared."""
        self._batch.add(path, new_folder, finished)

    def _flush(self, paths: set[str], folders: set[str], _finished: set[str]) -> bool:
        if self.store.problem is not None:
            return True  # dropped: the folder is rescanned whole when it is back
        if self._busy is not None:
            return False
        self._run(Deferred.fromCoroutine(self._refresh(sorted(paths), outermost(folders))))
        return True

    async def _refresh(self, paths: list[str], folders: list[str]) -> None:
        await self.store.refresh(paths)
        for folder in folders:
            await self.store.rescan(folder)

    def _rescan_all(self) -> None:
        if self._busy is None and self.store.problem is None:
            self._run(self.store.rescan())

    def _run(self, work: Deferred[Any]) -> None:
        self._busy = work

        def done(result: object) -> None:
            self._busy = None

        def failed(failure: Failure) -> None:
            if not failure.check(FolderUnavailable):  # said once by the store
                log.failure("file_sync: rescan failed", failure)

        work.addErrback(failed)
        work.addBoth(done)

    def _purge(self) -> None:
        self.store.purge_tombstones(time.time() - TOMBSTONE_HORIZON).addErrback(
            lambda f: log.failure("file_sync: purging tombstones failed", f)
        )

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self._batch.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.hub.close_all()
        waits: list[Deferred[Any]] = []
        observer = self._stop_observer()
        if observer is not None:
            from twisted.internet.threads import deferToThreadPool

            waits.append(
                deferToThreadPool(self.reactor, self.reactor.getThreadPool(), observer.join, 5)
            )
        busy = self._busy if self._busy is not None else Deferred.fromCoroutine(_none())

        def close(_: object) -> Deferred[None]:
            return self.store.stop()

        waits.append(busy.addBoth(close))
        return DeferredList([maybeDeferred(lambda: None), *waits])


def outermost(folders: set[str]) -> list[str]:
    """``folders`` without those inside another one of them (rescanned with it)."""
    kept: list[str] = []
    for folder in sorted(folders):
        if not any(folder.startswith(parent + "/") for parent in kept):
            kept.append(folder)
    return kept


async def _none() -> None:
    return None
