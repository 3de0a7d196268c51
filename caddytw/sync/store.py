"""The sync store behind the ``file_sync`` handler: an interface and its default
implementation, a local folder with a SQLite index.

:class:`ISyncStore` is what the HTTP layer uses; every method returns a Deferred so
another backend (object storage, a remote index) can replace the default without
touching the endpoints. :class:`LocalSyncStore` runs the blocking
:class:`~caddytw.sync.core.LocalStoreCore` on a dedicated single thread (every commit
is serialized there, which makes check-then-commit atomic) and the long work, staging
upload bodies and hashing during rescans, on the reactor's thread pool, so neither the
reactor nor other clients wait for a large file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import Attribute, Interface, implementer

from caddytw.sync.core import LocalStoreCore, Preconditions, observe_folder
from caddytw.sync.folder import StoreError, checked_path
from caddytw.sync.home import FolderUnavailable
from caddytw.sync.index import IndexLocation
from caddytw.sync.protocol import Change, ChangesPage, FileMetadata, SyncRequest, SyncResponse

log = Logger()
T = TypeVar("T")
Listener = Callable[[list[Change]], None]
PutStatus = Literal["created", "updated", "unchanged"]
#: Seconds between attempts to open a folder that is missing or not the indexed one.
REOPEN_INTERVAL = 2.0


class UploadCancelled(Exception):
    """The client went away before its upload was committed; nothing was kept."""


class ISyncStore(Interface):
    """Files plus an index with a change journal; all methods return Deferreds.

    Failures are :class:`~caddytw.sync.folder.StoreError` (with an HTTP status) or
    :class:`~caddytw.sync.core.Conflict` (412, with a ``ConflictInfo``).
    """

    root = Attribute("Where the files live (a Path), for logs.")
    problem = Attribute("Why nothing is served (503 everywhere), or None.")

    def start() -> Deferred[bool]:
        """Open the store (counted: each start needs a stop); fires True if rebuilt."""

    def stop() -> Deferred[None]:
        """Release one start; the last one closes the store."""

    def subscribe(listener: Listener) -> Callable[[], None]:
        """Call ``listener(changes)`` in the reactor thread after each commit."""

    def listing() -> Deferred[tuple[list[FileMetadata], str, int]]:
        """Every live path, the index id and the matching cursor."""

    def metadata(path: str) -> Deferred[FileMetadata | None]:
        """One path's metadata, ``None`` when absent."""

    def changes(
        since: int, index_id: str | None, limit: int, client_id: str | None
    ) -> Deferred[ChangesPage]:
        """Changes after ``since`` (recorded as ``client_id``'s cursor)."""

    def open_file(path: str) -> Deferred[tuple[BinaryIO, FileMetadata]]:
        """An open binary file and the metadata of the bytes it holds."""

    def open_files(
        paths: list[str],
    ) -> Deferred[list[tuple[BinaryIO, FileMetadata] | StoreError]]:
        """:meth:`open_file` for many paths at once; each gets its file or its error."""

    def put(
        path: str,
        source: BinaryIO,
        expected_hash: str | None,
        conditions: Preconditions,
        modified_ns: int | None,
        origin: str | None,
        cancelled: Callable[[], bool],
    ) -> Deferred[tuple[FileMetadata, PutStatus]]:
        """Store ``source`` at ``path`` atomically if ``conditions`` hold.

        ``source`` is read (``read(n)`` only) off the reactor thread, and only once the
        conditions were checked: it may block, as a request body still arriving does
        (:class:`~caddytw.http.body.ThreadReader`)."""

    def delete(path: str, base_hash: str | None, origin: str | None) -> Deferred[Any]:
        """Delete a file or empty folder if its hash is ``base_hash`` (when given)."""

    def apply_sync(request: SyncRequest, origin: str | None) -> Deferred[SyncResponse]:
        """Apply a ``POST /api/sync`` request."""

    def rescan(under: str | None = None) -> Deferred[list[Change]]:
        """Record changes made in the folder by other programs (only below the folder
        ``under`` when given)."""

    def refresh(paths: list[str]) -> Deferred[list[Change]]:
        """Re-check single paths (and their parents) a watcher reported."""

    def purge_tombstones(older_than: float) -> Deferred[int]:
        """Forget deletions older than a timestamp."""


class PathLocks:
    """One DeferredLock per path, dropped when free: two uploads of one path never
    stage at once (the second fails its precondition fast instead of copying)."""

    def __init__(self) -> None:
        self._locks: dict[str, DeferredLock] = {}
        self._users: dict[str, int] = {}

    async def run(self, paths: list[str], work: Callable[[], Any]) -> Any:
        ordered = sorted(set(paths))
        taken: list[str] = []
        try:
            for path in ordered:
                lock = self._locks.setdefault(path, DeferredLock())
                self._users[path] = self._users.get(path, 0) + 1
                taken.append(path)
                await lock.acquire()
            return await work()
        finally:
            for path in reversed(taken):
                lock = self._locks[path]
                if lock.locked:
                    lock.release()
                self._users[path] -= 1
                if not self._users[path]:
                    del self._users[path], self._locks[path]

    def held(self) -> int:
        return len(self._locks)


@implementer(ISyncStore)
class LocalSyncStore:
    """The embedded default store: ``root`` on the local disk, index inside it."""

    def __init__(
        self,
        root: Path | str,
        reactor: Any = None,
        portable_names: bool = True,
        create_root: bool = False,
        location: IndexLocation | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.core = LocalStoreCore(root, portable_names, create_root, location=location)
        self.root = self.core.root
        self.locks = PathLocks()
        self._listeners: list[Listener] = []
        self._pool: ThreadPool | None = None
        self._users = 0
        #: Why the folder is not served (503 everywhere), or ``None``: reactor thread.
        self.problem: str | None = None
        self._retry: LoopingCall | None = None
        self._available: list[Callable[[], None]] = []
        # Other nodes' commits (shared index): the cursor up to which they were pushed,
        # and the sequence numbers of ours pushed already (so none is pushed twice).
        self._remote_cursor: int | None = None
        self._local_seqs: set[int] = set()
        self._catching_up = False
        self._again = False
        self._unwatch: Callable[[], None] | None = None

    # -- threads -----------------------------------------------------------------------

    def _on_index(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work`` on the index thread; hand its changes to listeners afterwards."""
        if self._pool is None:
            raise StoreError(503, "the sync store is not running")

        def call() -> T:
            try:
                return work(*args)
            finally:
                changes = self.core.drain()
                if changes:
                    self.reactor.callFromThread(self._notify, changes)
                if self.core.problem is not None and self.core.problem != self.problem:
                    self.reactor.callFromThread(self._lost, self.core.problem)

        return deferToThreadPool(self.reactor, self._pool, call)

    # -- availability ------------------------------------------------------------------

    def _lost(self, problem: str) -> None:
        """The folder is missing or not the indexed one (reactor thread): say so once,
        answer 503 everywhere, and try to open it again every few seconds."""
        if problem == self.problem:
            return
        first = self.problem is None
        self.problem = problem
        log.error("file_sync: not serving {root}: {problem}", root=self.root, problem=problem)
        if first and self._pool is not None:
            self._retry = LoopingCall(self._reopen)
            self._retry.clock = self.reactor
            self._retry.start(REOPEN_INTERVAL, now=False)

    def _reopen(self) -> Deferred[None]:
        def opened(_: object) -> None:
            self.problem = None
            if self._retry is not None and self._retry.running:
                self._retry.stop()
            self._retry = None
            log.info("file_sync: {root} is back: serving it again", root=self.root)
            if self._unwatch is None:
                self._watch_others(False)
            for callback in list(self._available):
                callback()

        def refused(failure: Failure) -> None:
            if failure.check(FolderUnavailable):
                self._lost(failure.value.message)  # type: ignore[union-attr]
                return
            log.failure("file_sync: reopening {root} failed", failure, root=self.root)

        try:
            opening = self._on_index(self.core.open)
        except StoreError:
            return Deferred.fromCoroutine(_value(None))
        return opening.addCallbacks(opened, refused)

    def on_available(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the folder comes back after being unavailable."""
        self._available.append(callback)

    def _on_pool(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), work, *args)

    def _on_thread(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work`` on a thread of its own: an upload's staging waits on the network
        (its body is written as it arrives), which must not hold one of the reactor
        pool's few threads for the upload's duration."""
        done: Deferred[T] = Deferred()

        def run() -> None:
            try:
                result = work(*args)
            except BaseException:
                self.reactor.callFromThread(done.errback, Failure())
            else:
                self.reactor.callFromThread(done.callback, result)

        threading.Thread(target=run, name="caddytw-sync-upload", daemon=True).start()
        return done

    def _notify(self, changes: list[Change], local: bool = True) -> None:
        if local and self._unwatch is not None:
            self._local_seqs.update(change.seq for change in changes)
        for listener in list(self._listeners):
            try:
                listener(changes)
            except Exception:
                log.failure("sync change listener failed")

    # -- ISyncStore --------------------------------------------------------------------

    def start(self) -> Deferred[bool]:
        self._users += 1
        if self._users > 1:
            return Deferred.fromCoroutine(_value(False))
        self._pool = ThreadPool(1, 1, name=f"caddytw-sync-index {self.root}")
        self._pool.start()

        def refused(failure: Failure) -> bool:
            failure.trap(FolderUnavailable)
            self._lost(failure.value.message)  # type: ignore[union-attr]
            return False

        opening = self._on_index(self.core.open).addErrback(refused)
        opening.addCallback(self._watch_others)
        return opening

    # -- other nodes (a shared index) --------------------------------------------------

    def _watch_others(self, rebuilt: bool) -> bool:
        """With an index other nodes write too, push their commits to our listeners:
        start at the current sequence, then catch up after each notification."""
        if self._pool is None or self.problem is not None:
            return rebuilt
        location = self.core.location
        # From the sequence the index had when it opened (before any request of ours
        # was served): a client that got an answer from us misses no later commit.
        self._remote_cursor = self.core.opened_seq
        self._unwatch = location.watch(lambda: self.reactor.callFromThread(self._others_committed))
        return rebuilt

    def _others_committed(self) -> None:
        """A node committed (reactor thread): fetch what we have not pushed yet, one
        fetch at a time (notifications during a fetch ask for one more)."""
        if self._catching_up:
            self._again = True
            return
        if self._remote_cursor is None or self._pool is None or self.problem is not None:
            return
        self._catching_up = True

        def fetched(result: tuple[list[Change], int]) -> None:
            changes, cursor = result
            fresh = [c for c in changes if c.seq not in self._local_seqs]
            self._local_seqs = {seq for seq in self._local_seqs if seq > cursor}
            self._remote_cursor = max(cursor, self._remote_cursor or 0)
            if fresh:
                self._notify(fresh, local=False)

        def done(result: object) -> None:
            self._catching_up = False
            if self._again:
                self._again = False
                self._others_committed()

        fetching = self._on_index(self.core.changes_since, self._remote_cursor)
        fetching.addCallback(fetched)
        fetching.addErrback(lambda f: log.warn("file_sync: {e}", e=f.getErrorMessage()))
        fetching.addBoth(done)

    def stop(self) -> Deferred[None]:
        self._users -= 1
        if self._users > 0 or self._pool is None:
            return Deferred.fromCoroutine(_value(None))
        pool = self._pool
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._retry is not None and self._retry.running:
            self._retry.stop()
        self._retry = None

        def stopped(_: object) -> None:
            self._pool = None
            pool.stop()

        return self._on_index(self.core.shutdown).addBoth(stopped)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def listing(self) -> Deferred[tuple[list[FileMetadata], str, int]]:
        return self._on_index(self.core.listing)

    def metadata(self, path: str) -> Deferred[FileMetadata | None]:
        return self._on_index(self.core.metadata, path)

    def changes(
        self, since: int, index_id: str | None, limit: int, client_id: str | None
    ) -> Deferred[ChangesPage]:
        return self._on_index(self.core.changes, since, index_id, limit, client_id)

    def open_file(self, path: str) -> Deferred[tuple[BinaryIO, FileMetadata]]:
        return self._on_index(self.core.open_file, path)

    def open_files(
        self, paths: list[str]
    ) -> Deferred[list[tuple[BinaryIO, FileMetadata] | StoreError]]:
        """:meth:`open_file` for many paths in one hop to the index thread (a batch
        download of 10,000 small files made 10,000 hops); each path gets its file or
        its own error."""

        return self._on_index(self.core.open_files, paths)

    def put(
        self,
        path: str,
        source: BinaryIO,
        expected_hash: str | None,
        conditions: Preconditions,
        modified_ns: int | None,
        origin: str | None,
        cancelled: Callable[[], bool],
    ) -> Deferred[tuple[FileMetadata, PutStatus]]:
        async def upload() -> tuple[FileMetadata, PutStatus]:
            await self._on_index(self.core.precheck, path, conditions, expected_hash)
            token = self.core.temp_token(path)
            staged = await self._on_thread(
                self.core.blobs.stage, path, source, expected_hash, modified_ns, token
            )
            if cancelled():
                staged.discard()
                raise UploadCancelled(path)
            return await self._on_index(
                self.core.commit_upload, path, staged, conditions, origin, modified_ns
            )

        try:
            checked_path(path)
        except StoreError as error:
            return _failed(error)
        return ensureDeferred(self.locks.run([path], upload))

    def delete(self, path: str, base_hash: str | None, origin: str | None) -> Deferred[Any]:
        async def work() -> Any:
            return await self._on_index(self.core.delete, path, base_hash, origin)

        return ensureDeferred(self.locks.run([path], work))

    def apply_sync(self, request: SyncRequest, origin: str | None) -> Deferred[SyncResponse]:
        paths: list[str] = []
        for op in request.operations:
            paths.extend(_op_paths(op))

        async def work() -> SyncResponse:
            return await self._on_index(self.core.apply_sync, request, origin)

        return ensureDeferred(self.locks.run(paths, work))

    def rescan(self, under: str | None = None) -> Deferred[list[Change]]:
        async def work() -> list[Change]:
            known = await self._on_index(self.core.snapshot, under)
            found = await self._on_pool(observe_folder, self.core.blobs, known, under)
            return await self._on_index(self.core.apply_scan, known, found)

        async def alone() -> list[Change]:
            """A full rescan runs on one node at a time (the others skip their turn)."""
            if not await self._on_index(self.core.try_lock_rescan):
                return []
            try:
                return await work()
            finally:
                await self._on_index(self.core.unlock_rescan)

        if under is None:
            return ensureDeferred(alone())

        return ensureDeferred(work())

    def refresh(self, paths: list[str]) -> Deferred[list[Change]]:
        return self._on_index(self.core.refresh, paths)

    def purge_tombstones(self, older_than: float) -> Deferred[int]:
        return self._on_index(self.core.purge_tombstones, older_than)


def _op_paths(op: Any) -> list[str]:
    from caddytw.sync.protocol import Delete, Move

    if isinstance(op, Delete):
        return [op.path]
    if isinstance(op, Move):
        return [op.from_path, op.to_path]
    return [op.metadata.path]


async def _value(value: T) -> T:
    return value


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d
