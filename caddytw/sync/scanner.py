"""Keeps the index in step with changes other programs make in the folder.

A watchdog observer reports touched paths (on its own thread; they hop to the reactor
with ``callFromThread``); they are collected for a short moment and refreshed
one by one (a folder event triggers a full rescan, since a folder created and filled at
once is only partly reported). A periodic full rescan is the safety net for missed
events, and old tombstones are purged once a day. The service also owns the store's
lifetime and closes the WebSocket connections when the server stops.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from caddytw.sync.events import EventHub
from caddytw.sync.protocol import is_reserved_name
from caddytw.sync.store import LocalSyncStore

log = Logger()

TOMBSTONE_HORIZON = 30 * 24 * 3600.0
DEBOUNCE = 0.3


class FolderEvents:
    """A watchdog handler forwarding relative paths into the reactor."""

    def __init__(self, service: SyncService) -> None:
        self.service = service

    def dispatch(self, event: Any) -> None:
        root = str(self.service.store.root)
        for raw in (getattr(event, "src_path", ""), getattr(event, "dest_path", "")):
            path = raw.decode() if isinstance(raw, bytes) else str(raw or "")
            if not path.startswith(root):
                continue
            relative = path[len(root) :].strip("/")
            if not relative or any(is_reserved_name(part) for part in relative.split("/")):
                continue
            self.service.reactor.callFromThread(
                self.service.touched, relative, bool(event.is_directory)
            )


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
        self._pending: set[str] = set()
        self._full = False
        self._flush_call: Any = None
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
        if self.watch:
            self._start_observer()
            # Changes made between the start-up scan and the watcher's first watch
            # would otherwise wait for the periodic rescan: catch up once now.
            self._rescan_all()

    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        observer = Observer()
        observer.schedule(FolderEvents(self), str(self.store.root), recursive=True)  # type: ignore[arg-type]
        observer.daemon = True
        observer.start()
        self._observer = observer

    def touched(self, path: str, is_directory: bool) -> None:
        """A path changed on disk (reactor thread): refresh it soon."""
        if is_directory:
            self._full = True
        self._pending.add(path)
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.reactor.callLater(DEBOUNCE, self._flush)

    def _flush(self) -> None:
        if self._busy is not None:
            self._flush_call = self.reactor.callLater(DEBOUNCE, self._flush)
            return
        paths, self._pending = sorted(self._pending), set()
        full, self._full = self._full, False
        work = self.store.rescan() if full else self.store.refresh(paths)
        self._run(work)

    def _rescan_all(self) -> None:
        if self._busy is None:
            self._run(self.store.rescan())

    def _run(self, work: Deferred[Any]) -> None:
        self._busy = work

        def done(result: object) -> None:
            self._busy = None

        work.addErrback(lambda f: log.failure("file_sync: rescan failed", f))
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
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.hub.close_all()
        waits: list[Deferred[Any]] = []
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            from twisted.internet.threads import deferToThreadPool

            waits.append(
                deferToThreadPool(self.reactor, self.reactor.getThreadPool(), observer.join, 5)
            )
        busy = self._busy if self._busy is not None else Deferred.fromCoroutine(_none())

        def close(_: object) -> Deferred[None]:
            return self.store.stop()

        waits.append(busy.addBoth(close))
        return DeferredList([maybeDeferred(lambda: None), *waits])


async def _none() -> None:
    return None
