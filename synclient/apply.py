"""Carry out a plan: change the local folder and the server, one safe step at a time.

Every local change first re-checks that the path still holds what the plan assumed (a
user may have written to it meanwhile); when it does not, the step is skipped and the path
re-planned. Downloads land through a verified temp file and ``os.replace``, so a crash
leaves either the old file or the new one. Remote changes state their base hash; a
refusal (412) refreshes that path's server metadata and re-plans it. Conflict copies are
written before the winner overwrites anything, so both versions exist at every moment.
Everything that was written is recorded (hash + stat) so the watcher's echo of it is
recognised as "nothing new".
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_module
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from caddytw.sync.chunks import DELTA_MIN_SIZE
from caddytw.sync.localfs import hash_file
from caddytw.sync.protocol import Create, Delete, FileMetadata, Move, SyncOperation
from synclient import planner
from synclient.batch import MAX_BYTES, MAX_ENTRIES
from synclient.delta import DeltaClient
from synclient.grouped import Budget, Grouped, fsync_all
from synclient.planner import (
    DIR_HASH,
    Action,
    DeleteLocal,
    DeleteRemote,
    Download,
    MoveLocal,
    MoveRemote,
    RenameLocal,
    SaveRemoteCopy,
    SetBase,
    Upload,
    Version,
)
from synclient.remote import (
    HashMismatch,
    NotFound,
    Remote,
    RemoteError,
    Stale,
    Unreachable,
    download_temp,
)
from synclient.state import Stat, StateDB

log = Logger()

BATCH = 500
SMALL_FILE = 256 * 1024
#: Bytes of small transfers in flight at once (they share batch requests and install
#: groups); each file also counts :data:`SMALL_OVERHEAD` for its bookkeeping. With 256
#: files at a time, 10,000 small files crawled through batches of a few dozen.
SMALL_BUDGET = 48 * 1024 * 1024
SMALL_OVERHEAD = 1024
"""Files up to this size are downloaded into memory and written out in one thread hop."""
CHECKPOINT = 1000
"""A pass's state writes are one transaction, committed every this many steps."""
#: Small file downloads per bulk batch (:meth:`Applier._bulk`: as many as one batch
#: request takes), its bytes, and the batches in flight at once (one being received
#: while another is installed).
BULK_ENTRIES = MAX_ENTRIES
BULK_BYTES = MAX_BYTES
#: Entries in the first bulk batch; each later one may hold twice as many as the one
#: before (up to :data:`BULK_ENTRIES`). The first files are then on disk after the
#: server has read a hundred of them, not a thousand (about half a second under load,
#: the disk idle meanwhile), while later batches keep the round trips few.
BULK_FIRST = 100
BULK_IN_FLIGHT = 3


@dataclass(frozen=True, slots=True)
class _Install:
    """One downloaded file to put in place (see :meth:`Applier._install_group`)."""

    temp: Path
    target_path: str
    expect_local: Version | None
    mtime: float
    body: bytes | None
    #: The SHA-256 ``body`` must have (checked before it is written); ``None``: the
    #: caller verified it already.
    sha256: str | None = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FolderGone(Exception):
    """The local folder (or its state) disappeared: unmounted or emptied."""


class LinkInPath(OSError):
    """A symbolic link where the client was about to write, read or delete."""


def refuse_links(root: Path, relative: Path | str) -> None:
    """Raise :class:`LinkInPath` when ``relative`` or any folder above it (inside
    ``root``) is a symbolic link. Called right before every local write, upload read and
    delete: the scanner never follows links, but the tree may change under a pass."""
    # Plain strings, not pathlib: this runs three times per downloaded file.
    current = os.fspath(root)
    for part in os.fspath(relative).split("/"):
        if part in ("", "."):
            continue
        current = f"{current}/{part}"
        try:
            info = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            return
        if stat_module.S_ISLNK(info.st_mode):
            raise LinkInPath(errno.ELOOP, "a symbolic link is in the way", str(current))


def make_dirs(root: Path, relative: Path | str) -> None:
    """Create ``root/relative`` and its missing parents, but never ``root`` itself: a
    vanished sync folder (an unmounted disk) must not be recreated and filled, so it
    raises :class:`FolderGone` instead. An existing link on the way is never entered."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            if os.path.islink(current):
                raise LinkInPath(
                    errno.ELOOP, "a symbolic link is in the way", str(current)
                ) from None
            continue
        except FileNotFoundError:
            if not root.is_dir():
                raise FolderGone(f"the sync folder {root} disappeared") from None
            raise


def _stat_key(path: Path) -> tuple[int, int, int, int, int] | None:
    """What changes when anyone writes ``path`` (``None``: absent). ctime included:
    a tool that restores the mtime after writing still moves it."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create_temp(root: Path, temp: Path) -> int:
    """A descriptor open for writing on a fresh ``temp`` (mode 0o666 less the umask,
    as ``open(temp, "xb")`` makes it): its folder is created when missing (never the
    root: see :func:`make_dirs`), and a temp file left by an interrupted run is
    truncated and reused. ``O_NOFOLLOW``: never through a link at the temp name."""
    try:
        return os.open(temp, _TEMP_FLAGS, 0o666)
    except FileNotFoundError:  # a new folder (links above were refused)
        make_dirs(root, temp.parent.relative_to(root))
        return os.open(temp, _TEMP_FLAGS, 0o666)
    except FileExistsError:
        return os.open(temp, (_TEMP_FLAGS & ~os.O_EXCL) | os.O_TRUNC, 0o666)


def version_of(meta: FileMetadata, origin: str = "") -> Version:
    """A server FileMetadata as a planner version (directories get the pseudo-hash)."""
    if meta.is_directory:
        return Version(DIR_HASH)
    return Version(meta.hash, meta.size, meta.modified.timestamp(), origin)


@dataclass(slots=True)
class Outcome:
    """What a run left to do: ``dirty`` paths must be re-planned (after ``refresh`` ones
    have had their server metadata fetched again)."""

    dirty: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    done: int = 0
    failed: list[str] = field(default_factory=list)
    unreachable: Exception | None = None
    unstorable: dict[str, str] = field(default_factory=dict)
    """Paths one side cannot store (name too long, invalid there): path -> why."""


UNSTORABLE_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})
"""Local write errors that mean "this filesystem cannot hold that name"."""
UNSTORABLE_STATUSES = frozenset({400, 414, 422})
"""Upload answers that mean "the server refuses that name" (a 4xx that retrying the
same bytes under the same name cannot change)."""


def cannot_store(error: Exception, upload: bool) -> bool:
    """Whether ``error`` says a name cannot be stored (so retrying would only loop)."""
    if isinstance(error, UnicodeError):
        return True
    if isinstance(error, LinkInPath):
        return False
    if isinstance(error, OSError):
        return error.errno in UNSTORABLE_ERRNOS
    return upload and isinstance(error, RemoteError) and error.status in UNSTORABLE_STATUSES


class Applier:
    def __init__(
        self,
        root: Path,
        state: StateDB,
        remote: Remote,
        *,
        parallel: int = 8,
        on_file: Callable[[str, int], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        delta: DeltaClient | None = None,
    ) -> None:
        self.root = root
        self.delta = delta
        self.state = state
        self.remote = remote
        self.semaphore = DeferredSemaphore(parallel)
        # Small files go in batches (synclient.batch): many in flight at once is what
        # lets them share requests; memory stays under SMALL_BUDGET.
        self.small_slots = Budget(SMALL_BUDGET)
        self.on_file = on_file or (lambda path, size: None)
        from twisted.internet import reactor

        self._installs: Grouped[_Install, Stat | None] = Grouped(reactor, self._install_group)
        self.on_bytes = on_bytes
        self._renamed_in: set[Path] = set()
        self._renamed_lock = threading.Lock()
        state.before_commit.append(self._sync_renames)

    def _renamed(self, *paths: str) -> None:
        """Note the folders of ``paths`` for the fsync before the next state commit."""
        with self._renamed_lock:
            self._renamed_in.update(self._full(p).parent for p in paths)

    def _sync_renames(self) -> None:
        """Before the state commits rows naming downloaded files, make their renames
        durable (one fsync per folder per commit, not per file): otherwise a power cut
        could leave the old file under a base naming the new one, and the old bytes
        would then look like a local edit and be uploaded over the newer ones."""
        with self._renamed_lock:
            folders, self._renamed_in = self._renamed_in, set()
        # Side by side, like the files' own fsyncs: a commit after 1,000 downloads into
        # 100 folders took 100 journal commits one after another.
        for folder, error in fsync_all(str(folder) for folder in folders).items():
            log.warn("cannot fsync {folder}: {error}", folder=folder, error=error)

    # -- local checks -------------------------------------------------------------------

    def _full(self, path: str) -> Path:
        return self.root / path

    def _local_is(self, path: str, expect: Version | None) -> bool:
        """Runs in a thread: whether ``path`` still holds ``expect`` (absent for None).
        A link at or above ``path`` holds nothing we may touch: never what was expected."""
        full = self._full(path)
        try:
            refuse_links(self.root, path)
        except LinkInPath:
            return False
        try:
            info = os.stat(full, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return expect is None
        if expect is None:
            return False
        if expect.is_dir:
            return stat_module.S_ISDIR(info.st_mode)
        if not stat_module.S_ISREG(info.st_mode):
            return False
        cached = self.state.cache.get(path)
        if cached is not None and cached.stat == Stat.of(info):
            return cached.hash == expect.hash
        return hash_file(full) == expect.hash

    async def local_is(self, path: str, expect: Version | None) -> bool:
        result: bool = await deferToThread(self._local_is, path, expect)
        return result

    def unique_copy(self, copy: str) -> str:
        """``copy``, or ``copy`` with a counter, free on both sides."""
        candidate, n = copy, 1
        while os.path.lexists(self._full(candidate)) or candidate in self.state.remote:
            n += 1
            stem, dot, ext = copy.rpartition(".")
            candidate = f"{stem}-{n}.{ext}" if dot and "/" not in ext else f"{copy}-{n}"
        return candidate

    # -- running ------------------------------------------------------------------------

    async def run(self, actions: Iterable[Action]) -> Outcome:
        """Run ``actions`` (already in planner order), in phases; transfers in parallel."""
        with self.state.batch(keep_on_error=True):
            return await self._run(actions)

    async def _run(self, actions: Iterable[Action]) -> Outcome:
        outcome = Outcome()
        groups: dict[str, list[Action]] = {}
        for action in actions:
            groups.setdefault(action.path, []).append(action)
        moves: list[list[Action]] = []
        mkdirs: list[list[Action]] = []
        transfers: list[list[Action]] = []
        file_deletes: list[list[Action]] = []
        dir_deletes: list[list[Action]] = []
        bases: list[list[Action]] = []
        for group in groups.values():
            first = group[0]
            if isinstance(first, MoveLocal | MoveRemote):
                moves.append(group)
            elif isinstance(first, SetBase):
                bases.append(group)
            elif isinstance(first, DeleteLocal | DeleteRemote) and len(group) == 1:
                expect = (
                    first.expect_local if isinstance(first, DeleteLocal) else first.expect_remote
                )
                (dir_deletes if expect.is_dir else file_deletes).append(group)
            elif (
                len(group) == 1
                and isinstance(first, Download | Upload)
                and (first.remote.is_dir if isinstance(first, Download) else first.local.is_dir)
            ):
                mkdirs.append(group)
            else:
                transfers.append(group)
        try:
            for group in moves:
                await self._group(group, outcome)
            await self._directories([g[0] for g in mkdirs], outcome)
            bulk = [g[0] for g in transfers if self._bulk_download(g)]
            rest = [g for g in transfers if not self._bulk_download(g)]
            await gatherResults(
                [Deferred.fromCoroutine(self._bulk(bulk, outcome))]
                + [self._start(group, outcome) for group in rest],
                consumeErrors=True,
            ).addErrback(_first_error)
            await self._deletes([g[0] for g in file_deletes], outcome)
            await self._deletes([g[0] for g in dir_deletes], outcome)
            with self.state.batch():
                for group in bases:
                    for action in group:
                        assert isinstance(action, SetBase)
                        self.state.set_base(action.path, action.version)
                        outcome.done += 1
        except Unreachable as error:
            outcome.unreachable = error
        return outcome

    def _bulk_download(self, group: list[Action]) -> bool:
        """Whether ``group`` is one small file download that can go the bulk way."""
        if len(group) != 1 or not self.remote.batches or not self.remote.small.enabled:
            return False
        action = group[0]
        return (
            isinstance(action, Download)
            and not action.remote.is_dir
            and action.remote.size <= SMALL_FILE
            and (self.delta is None or action.remote.size < DELTA_MIN_SIZE)
        )

    async def _bulk(self, actions: list[Action], outcome: Outcome) -> None:
        """Small file downloads without a coroutine or a Deferred per file: the actions
        are cut into batches (:data:`BULK_ENTRIES` / :data:`BULK_BYTES`), each fetched in
        one request and installed in one thread hop (:meth:`_install_group`: verified,
        durable, stat-key checked, renamed), :data:`BULK_IN_FLIGHT` batches at a time so
        the network and the disk overlap. Each file's outcome is still its own."""
        batches: list[list[Download]] = []
        current: list[Download] = []
        size = 0
        entries = BULK_FIRST
        for action in actions:
            assert isinstance(action, Download)
            if current and (len(current) >= entries or size >= BULK_BYTES):
                batches.append(current)
                current, size = [], 0
                entries = min(2 * entries, BULK_ENTRIES)
            current.append(action)
            size += action.remote.size
        if current:
            batches.append(current)
        batches.reverse()

        async def worker() -> None:
            while batches:
                await self._bulk_batch(batches.pop(), outcome)

        await gatherResults(
            [Deferred.fromCoroutine(worker()) for _ in range(BULK_IN_FLIGHT)],
            consumeErrors=True,
        ).addErrback(_first_error)

    async def _bulk_batch(self, actions: list[Download], outcome: Outcome) -> None:
        """One batch of :meth:`_bulk`."""
        try:
            entries = await self.remote.small.download_many([a.path for a in actions])
        except Unreachable:
            raise
        except RemoteError as error:  # a refused or broken answer: no entry of it is used
            for action in actions:
                self._failed(action, error, outcome)
            return
        if entries is None:  # the server has no batch endpoints: one request each
            await gatherResults(
                [self._start([action], outcome) for action in actions], consumeErrors=True
            ).addErrback(_first_error)
            return
        jobs: list[_Install] = []
        fetched: list[Download] = []
        for action, entry in zip(actions, entries, strict=True):
            if isinstance(entry, Exception):
                self._failed(action, entry, outcome)
                continue
            if self.on_bytes is not None:
                self.on_bytes(len(entry))
            remote = action.remote
            temp = download_temp(self._full(action.path), remote.hash)
            jobs.append(
                _Install(temp, action.path, action.expect_local, remote.mtime, entry, remote.hash)
            )
            fetched.append(action)
        results = await deferToThread(self._install_group, jobs, True)
        for action, written in zip(fetched, results, strict=True):
            if isinstance(written, BaseException):
                if not isinstance(written, Exception):
                    raise written
                self._failed(action, written, outcome)
            elif written is None:
                outcome.dirty.add(action.path)  # changed meanwhile: plan it again
            else:
                remote = action.remote
                self.state.set_cache(action.path, remote.hash, written)
                self.state.set_base(action.path, remote)
                self.on_file(action.path, remote.size)
                outcome.done += 1
                if outcome.done % CHECKPOINT == 0:
                    self.state.checkpoint()

    def _start(self, group: list[Action], outcome: Outcome) -> Any:
        """Small single transfers share batches and a byte budget; everything else runs
        ``parallel`` at a time."""
        if self.remote.batches and len(group) == 1:
            action = group[0]
            size = None
            if isinstance(action, Download) and action.remote.size <= SMALL_FILE:
                size = action.remote.size
            if isinstance(action, Upload) and action.local.size <= SMALL_FILE:
                size = action.local.size
            if size is not None:
                weight = size + SMALL_OVERHEAD
                return self.small_slots.run(weight, self._group_d, group, outcome)
        return self.semaphore.run(self._group_d, group, outcome)

    def _group_d(self, group: list[Action], outcome: Outcome) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self._group(group, outcome))

    async def _group(self, group: list[Action], outcome: Outcome) -> None:
        """One path's actions in order; stop at the first that cannot proceed."""
        for action in group:
            try:
                ok = await self._one(action, outcome)
            except Unreachable:
                raise
            except (RemoteError, OSError, UnicodeError) as error:
                self._failed(action, error, outcome)
                return
            if not ok:
                outcome.dirty.add(action.path)
                return
            outcome.done += 1
            if outcome.done % CHECKPOINT == 0:
                self.state.checkpoint()

    def _failed(self, action: Action, error: Exception, outcome: Outcome) -> None:
        """Note what ``action``'s ``error`` means for its path (the other paths carry
        on): a 412 re-plans it on the server's current version, a 404 refreshes it, a
        name one side cannot store is reported, anything else is logged and retried.
        :class:`Unreachable` and errors that are not a path's own are raised."""
        if isinstance(error, Unreachable) or not isinstance(
            error, RemoteError | OSError | UnicodeError
        ):
            raise error
        if isinstance(error, Stale):
            current = error.current
            self.state.set_remote_seen(
                action.path, None if current is None else version_of(current)
            )
            outcome.dirty.add(action.path)
            return
        if isinstance(error, NotFound):
            outcome.refresh.add(action.path)
            outcome.dirty.add(action.path)
            return
        if cannot_store(error, isinstance(action, Upload)):
            where = "the server" if isinstance(action, Upload) else "this folder"
            outcome.unstorable[action.path] = f"{where} cannot store it: {error}"
            return
        log.warn("{path}: {error}", path=action.path, error=error)
        outcome.failed.append(f"{action.path}: {error}")
        outcome.dirty.add(action.path)

    async def _one(self, action: Action, outcome: Outcome) -> bool:
        if isinstance(action, Download):
            return await self._download(action)
        if isinstance(action, Upload):
            return await self._upload(action)
        if isinstance(action, SaveRemoteCopy):
            copy = self.unique_copy(action.copy)
            await self._fetch(action.path, copy, action.remote, None)
            outcome.dirty.add(copy)
            return True
        if isinstance(action, RenameLocal):
            if not await self.local_is(action.path, action.expect_local):
                return False
            copy = self.unique_copy(action.copy)
            os.rename(self._full(action.path), self._full(copy))
            self._renamed(action.path, copy)
            entry = self.state.cache.get(action.path)
            if entry is not None:
                self.state.set_cache(copy, entry.hash, entry.stat)
            self.state.set_cache(action.path, None)
            outcome.dirty.add(copy)
            return True
        if isinstance(action, MoveLocal):
            return await self._move_local(action)
        if isinstance(action, MoveRemote):
            return await self._move_remote(action, outcome)
        if isinstance(action, DeleteLocal | DeleteRemote):
            await self._deletes([action], outcome)
            return action.path not in outcome.dirty
        if isinstance(action, SetBase):
            self.state.set_base(action.path, action.version)
            return True
        raise AssertionError(action)  # pragma: no cover

    # -- downloads ----------------------------------------------------------------------

    async def _fetch(
        self, path: str, target_path: str, remote: Version, expect_local: Version | None
    ) -> bool:
        """Download ``path``'s ``remote`` bytes into ``target_path`` if it still holds
        ``expect_local``."""
        target = self._full(target_path)
        body: bytes | None = None
        built = None
        if self.delta is not None and remote.size >= DELTA_MIN_SIZE:
            make_dirs(self.root, Path(target_path).parent)
            built = await self.delta.download(
                path, target, remote.hash, remote.size, on_bytes=self.on_bytes
            )
        if built is not None:
            temp = built[0]
        elif remote.size <= SMALL_FILE:
            temp = download_temp(target, remote.hash)
            body = await self.remote.fetch(
                path, remote.hash, remote.size, self.on_bytes, verify=False
            )
        else:
            make_dirs(self.root, Path(target_path).parent)
            temp = await self.remote.download(
                path, target, remote.hash, remote.size, on_bytes=self.on_bytes, sync=False
            )
        written: Stat | None
        if body is not None:
            written = await self._installs(
                _Install(temp, target_path, expect_local, remote.mtime, body, remote.hash)
            )
        else:
            written = await deferToThread(
                self._install, temp, target_path, expect_local, remote.mtime
            )
        if written is None:
            return False  # keep the temp file: the next attempt resumes from it
        if built is not None and self.delta is not None:
            await deferToThread(self.delta.remember, target_path, written, remote.hash, built[1])
        self.state.set_cache(target_path, remote.hash, written)
        self.on_file(target_path, remote.size)
        return True

    def _install(
        self,
        temp: Path,
        target_path: str,
        expect_local: Version | None,
        mtime: float,
        body: bytes | None = None,
    ) -> Stat | None:
        """Runs in a thread, one hop for all of a download's blocking steps: write
        ``body`` (already verified) to the temp file when given, make the temp file
        durable, check the target still holds what the plan assumed, rename over it;
        return the new file's stat (``None``: left alone)."""
        job = _Install(temp, target_path, expect_local, mtime, body)
        result = self._install_group([job])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _install_group(
        self, jobs: list[_Install], sync_folders: bool = False
    ) -> list[Stat | BaseException | None]:
        """Runs in a thread: install downloaded files, each as :meth:`_install` alone
        would, in three phases so that their ``fsync`` calls run side by side:

        1. per file: check ``body`` against its SHA-256, refuse links, note the
           target's stat key, write ``body`` to the temp file when given, set its mtime;
        2. all temp files made durable at once (:func:`~synclient.grouped.fsync_all`);
        3. per file: check the target still holds what the plan assumed and that its
           stat key did not move since phase 1, then rename over it.

        With ``sync_folders``, a fourth phase makes the renames durable (the folders'
        ``fsync`` side by side, here in the thread, instead of on the reactor thread
        before the next state commit).

        No file is renamed into place before its bytes are durable. A user's edit made
        meanwhile keeps its bytes and the path is planned again (a conflict copy, not a
        loss). One file's failure is its own outcome; the others carry on.

        The system calls per file are counted (an initial sync makes this loop run
        10,000 times, and each call hands the GIL over to the other threads): the temp
        file is written with ``os.open``/``os.write`` and dated with ``futimens``, and
        the stat recorded is the one taken of the temp file's descriptor (size, mtime
        and inode do not change on rename, and it is certain to describe our bytes
        even if someone replaces the target right after the rename)."""
        outcomes: list[Stat | BaseException | None] = [None] * len(jobs)
        staged: dict[int, tuple[tuple[int, int, int, int, int] | None, Stat]] = {}
        for index, job in enumerate(jobs):
            try:
                staged[index] = self._stage(job)
            except (OSError, FolderGone, HashMismatch) as error:
                outcomes[index] = error
        failed = fsync_all(str(jobs[index].temp) for index in staged)
        for index, (old, written) in staged.items():
            job = jobs[index]
            unsynced = failed.get(str(job.temp))
            if unsynced is not None:
                outcomes[index] = unsynced
                continue
            try:
                outcomes[index] = self._replace(job, old, written, note=not sync_folders)
            except (OSError, FolderGone) as problem:
                outcomes[index] = problem
        if sync_folders:
            renamed = [
                jobs[i].target_path for i, out in enumerate(outcomes) if isinstance(out, Stat)
            ]
            folders = {os.path.dirname(self._full(path)) for path in renamed}
            left = fsync_all(folders)
            if left:  # the commit hook tries again (and warns)
                self._renamed(*(p for p in renamed if os.path.dirname(self._full(p)) in left))
        return outcomes

    def _stage(self, job: _Install) -> tuple[tuple[int, int, int, int, int] | None, Stat]:
        """Phase 1 of :meth:`_install_group` for one file: the target's stat key, and
        the temp file's stat once written and dated."""
        body, expected = job.body, job.sha256
        if body is not None and expected is not None and sha256_hex(body) != expected:
            raise HashMismatch(f"download {job.target_path}: content does not match its hash")
        refuse_links(self.root, job.target_path)
        before = _stat_key(self._full(job.target_path))
        if body is None:
            if job.mtime:
                os.utime(job.temp, (job.mtime, job.mtime), follow_symlinks=False)
            return before, Stat.of(os.lstat(job.temp))
        fd = _create_temp(self.root, job.temp)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if job.mtime:
                os.utime(fd, (job.mtime, job.mtime))
            written = Stat.of(os.fstat(fd))
        finally:
            os.close(fd)
        return before, written

    def _replace(
        self,
        job: _Install,
        before: tuple[int, int, int, int, int] | None,
        written: Stat,
        note: bool = True,
    ) -> Stat | None:
        """Phase 3 of :meth:`_install_group` for one (durable) temp file."""
        target = self._full(job.target_path)
        if job.expect_local is None:
            # The plan assumed nothing here: :meth:`_local_is` for ``None`` is "no link
            # on the way and nothing at the target", which one lstat tells along with
            # the stat key (both must still say "absent").
            try:
                refuse_links(self.root, job.target_path)
            except LinkInPath:
                return None
            if before is not None or _stat_key(target) is not None:
                return None  # created under us: keep the temp file, plan the path again
        else:
            if not self._local_is(job.target_path, job.expect_local):
                return None  # keep the temp file: the next attempt resumes from it
            refuse_links(self.root, job.target_path)
            if _stat_key(target) != before:
                return None  # changed under us: keep the temp file, plan the path again
        os.replace(job.temp, target)
        if note:
            self._renamed(job.target_path)
        return written

    async def _download(self, action: Download) -> bool:
        if action.remote.is_dir:
            return await self._mkdir_local(action.path, action.expect_local, action.remote)
        if not await self._fetch(action.path, action.path, action.remote, action.expect_local):
            return False
        self.state.set_base(action.path, action.remote)
        return True

    async def _mkdir_local(self, path: str, expect: Version | None, remote: Version) -> bool:
        if expect is not None and not expect.is_dir:
            return False
        make_dirs(self.root, path)
        self.state.set_base(path, remote)
        return True

    # -- uploads ------------------------------------------------------------------------

    async def _upload(self, action: Upload) -> bool:
        local = action.local
        expect = action.expect_remote
        if local.is_dir:
            return await self._mkdir_remote(action.path, expect)
        if expect is not None and expect.is_dir:
            return False  # the planner sends a directory/file clash through a conflict
        base = None if expect is None else expect.hash
        meta = None
        if self.delta is not None and local.size >= DELTA_MIN_SIZE:
            await deferToThread(refuse_links, self.root, action.path)
            meta = await self.delta.upload(action.path, local.hash, base, local.mtime)
        if meta is not None:
            pass  # sent as a delta
        elif local.size <= SMALL_FILE and self.remote.batches:
            data = await deferToThread(self._read_small, action.path)
            if data is None or hashlib.sha256(data).hexdigest() != local.hash:
                return False  # changed since the scan: plan it again
            meta = await self.remote.upload_bytes(
                action.path, data, local.hash, base, local.mtime or None
            )
        else:  # a server without delta transfers
            await deferToThread(refuse_links, self.root, action.path)
            meta = await self.remote.upload(
                action.path, self._full(action.path), local.hash, base, local.mtime or None
            )
        version = version_of(meta, self.state.client_id) if meta else local
        if version.hash != local.hash:
            return False
        self.state.set_remote(action.path, version)
        self.state.set_base(action.path, local)
        self.on_file(action.path, local.size)
        return True

    def _read_small(self, path: str) -> bytes | None:
        """A small file's bytes for a batch (thread), never through a link; ``None``
        when it grew past the small-file size since the scan."""
        refuse_links(self.root, path)
        with os.fdopen(os.open(self._full(path), os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
            data = handle.read(SMALL_FILE + 1)
        return data if len(data) <= SMALL_FILE else None

    async def _mkdir_remote(self, path: str, expect: Version | None) -> bool:
        await self._directories([Upload(path, planner.directory(), expect)], Outcome())
        return self.state.base.get(path) is not None

    async def _directories(self, actions: list[Action], outcome: Outcome) -> None:
        """Create folders: local ones at once, remote ones in batched ``Create``s."""
        remote_ops: list[tuple[str, SyncOperation]] = []
        for action in sorted(actions, key=lambda a: a.path.count("/")):
            if isinstance(action, Download):
                try:
                    made = await self._mkdir_local(action.path, action.expect_local, action.remote)
                except (OSError, UnicodeError) as error:
                    if not cannot_store(error, False):
                        raise
                    outcome.unstorable[action.path] = f"this folder cannot store it: {error}"
                    continue
                if made:
                    outcome.done += 1
                else:
                    outcome.dirty.add(action.path)
            elif isinstance(action, Upload):
                meta = FileMetadata(action.path, 0, datetime.now(UTC), "", True)
                remote_ops.append((action.path, Create(meta)))
        await self._remote_batch(remote_ops, outcome, planner.directory())

    # -- deletes and moves ----------------------------------------------------------------

    async def _deletes(self, actions: list[Action], outcome: Outcome) -> None:
        remote_ops: list[tuple[str, SyncOperation]] = []
        for action in sorted(actions, key=lambda a: -a.path.count("/")):
            if isinstance(action, DeleteLocal):
                if await self._delete_local(action):
                    outcome.done += 1
                else:
                    outcome.dirty.add(action.path)
            elif isinstance(action, DeleteRemote):
                expect = action.expect_remote
                base = None if expect.is_dir else expect.hash
                remote_ops.append((action.path, Delete(action.path, base)))
        await self._remote_batch(remote_ops, outcome, None)

    def _remove(self, action: DeleteLocal) -> bool:
        """Runs in a thread: delete ``action.path`` if it still holds what the plan
        assumed, re-checking its stat key right before (an edit made during the check
        keeps the file; the path is planned again)."""
        full = self._full(action.path)
        before = _stat_key(full)
        if not self._local_is(action.path, action.expect_local):
            return False
        refuse_links(self.root, action.path)
        if _stat_key(full) != before:
            return False
        try:
            if action.expect_local.is_dir:
                os.rmdir(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False  # new local content inside: it will be uploaded instead
            raise
        return True

    async def _delete_local(self, action: DeleteLocal) -> bool:
        if not await deferToThread(self._remove, action):
            return False
        self.state.set_cache(action.path, None)
        self.state.set_base(action.path, None)
        return True

    async def _remote_batch(
        self,
        ops: list[tuple[str, SyncOperation]],
        outcome: Outcome,
        result_version: Version | None,
    ) -> None:
        """Send ``ops`` in ``/api/sync`` batches; record what was applied."""
        for start in range(0, len(ops), BATCH):
            chunk = ops[start : start + BATCH]
            response = await self.remote.sync([op for _, op in chunk])
            for (path, _op), result in zip(chunk, response.results, strict=True):
                if result.status in ("applied", "unchanged"):
                    self.state.set_remote(path, result_version)
                    self.state.set_base(path, result_version)
                    outcome.done += 1
                else:
                    outcome.refresh.add(path)
                    outcome.dirty.add(path)

    async def _move_local(self, action: MoveLocal) -> bool:
        if not await self.local_is(action.src, action.version):
            return False
        if not await self.local_is(action.dst, None):
            return False
        make_dirs(self.root, Path(action.dst).parent)
        os.rename(self._full(action.src), self._full(action.dst))
        self._renamed(action.src, action.dst)
        entry = self.state.cache.get(action.src)
        with self.state.batch():
            if entry is not None:
                self.state.set_cache(action.dst, entry.hash, entry.stat)
            self.state.set_cache(action.src, None)
            self.state.set_base(action.src, None)
            self.state.set_base(action.dst, action.version)
        return True

    async def _move_remote(self, action: MoveRemote, outcome: Outcome) -> bool:
        response = await self.remote.sync([Move(action.src, action.dst, action.version.hash)])
        if response.results[0].status not in ("applied", "unchanged"):
            outcome.refresh.update((action.src, action.dst))
            outcome.dirty.add(action.src)
            return False
        with self.state.batch():
            self.state.set_remote(action.src, None)
            self.state.set_remote(action.dst, action.version)
            self.state.set_base(action.src, None)
            self.state.set_base(action.dst, action.version)
        return True


def _first_error(failure: Any) -> Any:
    """``gatherResults`` wraps errors; surface the original (e.g. Unreachable)."""
    from twisted.internet.defer import FirstError

    if failure.check(FirstError):
        return failure.value.subFailure
    return failure
