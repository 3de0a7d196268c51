"""The blocking heart of the local-folder store: the folder and its index kept equal.

:class:`LocalStoreCore` runs on one thread (the store's index thread). Each method
checks preconditions against the index *after* verifying the index against the disk,
then changes the disk and the index in one step, so a commit is atomic with respect to
every other commit. Changes it makes are collected and handed out by :meth:`drain`.
Large hashing is done elsewhere (:func:`observe_folder` and
:func:`caddytw.sync.folder.stage` run on pool threads); only single files whose disk
state no longer matches the index are rehashed here.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Concatenate, Literal, ParamSpec, TypeVar

from twisted.logger import Logger

from caddytw.sync.blobs import FolderBlobs, LocalFolder
from caddytw.sync.folder import (
    Observed,
    Staged,
    StoreError,
    checked_path,
    keeps_work,
)
from caddytw.sync.home import (
    FolderUnavailable,
    any_present,
    default_index_path,
    marker_present,
    missing_marker,
    read_marker,
    write_marker,
)
from caddytw.sync.index import Entry, Index, IndexLocation, SqliteLocation
from caddytw.sync.localfs import signed_by, signed_temp_token
from caddytw.sync.protocol import (
    FOLDER_MARKER,
    Change,
    ChangesPage,
    ConflictInfo,
    Create,
    Delete,
    FileMetadata,
    Move,
    OperationResult,
    SyncOperation,
    SyncRequest,
    SyncResponse,
    Update,
    unportable_reason,
)

log = Logger()

#: What a file looks like on disk during a scan: its stat and hash ("" for folders),
#: or ``None`` when it kept changing while being hashed (left for the next scan).
Seen = tuple[Observed, str] | None
#: Seconds after which a signed temp file nobody wrote to is a crashed upload's leftover
#: when other nodes share the folder (alone, every one found at start is).
STALE_TEMP_AGE = 3600.0


class Conflict(StoreError):
    """The server's state is not the one the change was based on (HTTP 412)."""

    def __init__(self, info: ConflictInfo, message: str) -> None:
        super().__init__(412, message)
        self.info = info


class NameClash(Conflict):
    """The path would be a second name for an existing one on a case-insensitive or
    normalising filesystem (``A.txt`` next to ``a.txt``): HTTP 409."""

    def __init__(self, info: ConflictInfo, message: str, existing: str) -> None:
        super().__init__(info, message)
        self.status = 409
        self.existing = existing


class Unstorable(StoreError):
    """A name some clients' filesystems cannot store (``portable_names``): HTTP 422, with
    a ConflictInfo-shaped body suggesting a rename."""

    def __init__(self, info: ConflictInfo, message: str) -> None:
        super().__init__(422, message)
        self.info = info


@dataclass(frozen=True)
class Preconditions:
    """``If-Match`` / ``If-None-Match`` of a write, as hashes (``"*"`` for any)."""

    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None

    def violated_by(self, current: Entry | None) -> str | None:
        """Why ``current`` (the server's state) fails these conditions, or ``None``."""
        if self.if_match is not None:
            if current is None:
                return "If-Match: the path does not exist"
            if "*" not in self.if_match and current.hash not in self.if_match:
                return f"If-Match: the current hash is {current.hash}"
        if self.if_none_match is not None and current is not None:
            if "*" in self.if_none_match:
                return "If-None-Match: *: the path exists"
            if current.hash in self.if_none_match:
                return "If-None-Match: the current hash matches"
        return None


def matches(entry: Entry | None, seen: Observed | None) -> bool:
    """Whether an index row still describes what is on disk (no rehash needed)."""
    if entry is None or seen is None:
        return entry is None and seen is None
    if entry.is_dir or seen.is_dir:
        return entry.is_dir == seen.is_dir
    return (entry.size, entry.mtime_ns, entry.inode) == (seen.size, seen.mtime_ns, seen.inode)


def observe_folder(
    blobs: FolderBlobs, known: Mapping[str, Entry], under: str | None = None
) -> dict[str, Seen]:
    """Walk the folder (only below the folder ``under`` when given) and hash what
    changed compared with ``known`` (blocking; meant for a pool thread)."""
    found: dict[str, Seen] = {}
    for path, seen in blobs.walk(under):
        entry = known.get(path)
        if seen.is_dir:
            found[path] = (seen, "")
        elif matches(entry, seen) and entry is not None:
            found[path] = (seen, entry.hash)
        else:
            found[path] = blobs.hash(path)
    return found


P = ParamSpec("P")
R = TypeVar("R")


def _serial(
    method: Callable[Concatenate[LocalStoreCore, P], R],
) -> Callable[Concatenate[LocalStoreCore, P], R]:
    """A write whose checks and commit run as one (:meth:`LocalStoreCore.serialized`)."""

    @functools.wraps(method)
    def call(self: LocalStoreCore, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.serialized():
            return method(self, *args, **kwargs)

    return call


def now_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000_000)


class LocalStoreCore:
    """Files under ``root`` plus their index (in Caddy's data dir: :mod:`caddytw.sync.home`)."""

    def __init__(
        self,
        root: Path | str,
        portable_names: bool = True,
        create_root: bool = False,
        index_path: Path | None = None,
        location: IndexLocation | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        #: The folder's bytes: every file operation of the store goes through it.
        self.blobs: FolderBlobs = LocalFolder(self.root)
        self.portable_names = portable_names
        self.create_root = create_root
        self.location: IndexLocation = location or SqliteLocation(
            index_path or default_index_path(self.root)
        )
        #: This node's own folder for working files (the delta chunk cache and staging):
        #: beside a SQLite index; for a shared (PostgreSQL) index, Caddy's data directory
        #: keyed by the folder, as a SQLite index would be, so it never lands in the tree.
        self.work_dir = (
            self.location.path.parent
            if isinstance(self.location, SqliteLocation)
            else default_index_path(self.root).parent
        )
        self._index: Index | None = None
        self._changes: list[Change] = []
        self._serial_depth = 0
        #: The index's sequence when it was opened (other nodes' later commits are news).
        self.opened_seq = 0
        #: Set when the folder went away mid-run: every call answers 503 until reopened.
        self.problem: str | None = None
        #: Signs temp file names (from the index, read-only once open: any thread).
        self.temp_secret = b""

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> bool:
        """Check the folder is the one the index describes (see :mod:`caddytw.sync.home`),
        open the index (creating it for a new folder) and catch up with the disk; True
        when the index was new. Raises :class:`FolderUnavailable` instead of guessing."""
        self.close()
        root = self.root
        where = self.location.describe()
        if not root.is_dir():
            if not self.create_root or self.location.exists():
                raise FolderUnavailable(
                    f"the folder {root} does not exist (disk not mounted?); file_sync "
                    'creates a missing root only for a new folder ("create_root": true)'
                )
            root.mkdir(parents=True)
        if self.location.prepare(root):
            log.info("file_sync: moved the index of {root} to {path}", root=root, path=where)
        marker = read_marker(root)
        existed = self.location.exists()
        if marker is not None and not existed:
            raise FolderUnavailable(
                f"{root}: the folder marker names index {marker}, but that index "
                f"({where}) is missing. Restore it, or delete "
                f"{root / FOLDER_MARKER} to start a new index (clients then merge both "
                "sides, never delete)"
            )
        index = self.location.open(existed)
        self.opened_seq = index.seq
        try:
            if marker is not None and marker != index.index_id:
                raise FolderUnavailable(
                    f"{root}: the folder marker names index {marker} but {where} "
                    f"is index {index.index_id}: not the same folder"
                )
            if marker is None:
                names = index.top_level_live()
                if existed and not any_present(root, names):
                    raise FolderUnavailable(
                        f"{root} has no folder marker and none of the {len(names)} top-level "
                        "names its index lists (an empty mount point?); mount the disk, or "
                        f"delete {where} to start a new index"
                    )
                write_marker(root, index.index_id)
                log.info("file_sync: wrote the folder marker of {root}", root=root)
        except BaseException:
            index.close()
            raise
        self._index = index
        self.temp_secret = index.temp_secret
        self.problem = None
        # Other nodes sharing the index may be streaming into temp files right now: then
        # only temp files untouched for an hour are leftovers of a crash.
        min_age = STALE_TEMP_AGE if index.shared else 0.0
        self.blobs.remove_leftovers(lambda name: signed_by(self.temp_secret, name), min_age)
        self.rescan()
        return index.created

    def temp_token(self, path: str) -> str:
        """The signed token of an upload's temp file (see :func:`signed_temp_token`)."""
        if not self.temp_secret:
            raise StoreError(503, "the sync index is not open")
        return signed_temp_token(self.temp_secret, path.rsplit("/", 1)[-1])

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def shutdown(self) -> None:
        """Close the index and what its location holds (the store stops)."""
        self.close()
        self.location.close()

    def try_lock_rescan(self) -> bool:
        """Whether this node may run a full rescan now (always, on its own index)."""
        return self.index.try_lock_rescan()

    def unlock_rescan(self) -> None:
        if self._index is not None:
            self._index.unlock_rescan()

    def check_folder(self) -> None:
        """Before recording anything as gone: the folder must still be there, marker
        and all (an unmounted disk is not a deletion)."""
        if not marker_present(self.root):
            error = missing_marker(self.root)
            self.problem = error.message
            raise error

    @property
    def index(self) -> Index:
        if self.problem is not None:
            raise FolderUnavailable(self.problem)
        if self._index is None:
            raise StoreError(503, "the sync index is not open")
        return self._index

    @contextlib.contextmanager
    def serialized(self) -> Iterator[None]:
        """Run a check-then-commit sequence atomically against every other writer of the
        index (:meth:`Index.serialized`: nothing more than this thread alone on SQLite,
        one transaction under the folder's lock on PostgreSQL). When that transaction
        rolls back, the changes it announced are dropped too."""
        before = len(self._changes)
        outermost = not self._serial_depth
        self._serial_depth += 1
        try:
            with self.index.serialized():
                yield
        except BaseException as error:
            if outermost and self.index.shared and not keeps_work(error):
                del self._changes[before:]
            raise
        finally:
            self._serial_depth -= 1

    def drain(self) -> list[Change]:
        """The changes committed since the last call, in sequence order."""
        changes, self._changes = self._changes, []
        return changes

    # -- index <-> disk ----------------------------------------------------------------

    def _emit(self, entry: Entry) -> Entry:
        self._changes.append(entry.change())
        return entry

    def _record(self, path: str, seen: Observed, hash_hex: str, origin: str | None) -> Entry:
        return self._emit(
            self.index.record(
                path, seen.is_dir, seen.size, seen.mtime_ns, seen.inode, hash_hex, origin
            )
        )

    def _forget(self, path: str, origin: str | None) -> None:
        """Tombstone ``path`` and, for a folder, everything below it (deepest first).
        Without an origin (seen missing on disk) only while the folder is intact."""
        if origin is None:
            self.check_folder()
        for child in reversed(self.index.children(path)):
            tomb = self.index.tombstone(child.path, origin)
            if tomb is not None:
                self._emit(tomb)
        tomb = self.index.tombstone(path, origin)
        if tomb is not None:
            self._emit(tomb)

    def lookup(self, path: str) -> Entry | None:
        """The live row for ``path`` after making sure it matches the disk (a change made
        by another program is recorded first, with no origin)."""
        seen = self.blobs.observe(path)
        entry = self.index.live(path)
        if matches(entry, seen):
            return entry
        with self.index.transaction():
            if self.index.shared:  # another node may have recorded it meanwhile
                entry = self.index.live(path)
                if matches(entry, seen):
                    return entry
            if seen is None:
                self._forget(path, None)
                return None
            if entry is not None and entry.is_dir != seen.is_dir:
                self._forget(path, None)
            if seen.is_dir:
                return self._record(path, seen, "", None)
            hashed = self.blobs.hash(path)
            if hashed is None:
                raise StoreError(409, f"{path!r} is being changed on the server; retry")
            if entry is not None and not entry.is_dir and entry.hash == hashed[1]:
                self.index.touch(path, hashed[0].mtime_ns, hashed[0].inode)
                return self.index.live(path)
            return self._record(path, hashed[0], hashed[1], None)

    def refuse_clash(
        self, path: str, local: FileMetadata | None = None, moving: str | None = None
    ) -> None:
        """Raise :class:`NameClash` when creating ``path`` (or one of its missing
        parents) would give an existing path a second name that differs only in case or
        Unicode normalisation, and :class:`Unstorable` when a new name is one Windows or
        macOS cannot store (with ``portable_names``). ``moving`` (a move's source) may
        clash with itself, so a case-only rename goes through."""
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if self.index.live(prefix) is not None:
                continue
            why = unportable_reason(parts[depth - 1]) if self.portable_names else None
            if why is not None:
                raise Unstorable(ConflictInfo(path, local, None, "Rename"), why)
            other = self.index.clash(prefix)
            if other is None:
                continue
            if moving is not None and (other.path == moving or other.path.startswith(moving + "/")):
                continue
            info = ConflictInfo(path, local, other.metadata())
            raise NameClash(
                info,
                f"{prefix!r} differs from the existing {other.path!r} only in case or "
                "Unicode normalisation; both cannot exist on every client",
                other.path,
            )

    def _make_parents(self, path: str, origin: str | None) -> None:
        for relative, seen in self.blobs.make_folders(path):
            self._record(relative, seen, "", origin)

    # -- reads -------------------------------------------------------------------------

    def listing(self) -> tuple[list[FileMetadata], str, int]:
        """Every live path, the index id and the cursor this listing corresponds to."""
        index = self.index
        with index.snapshot():
            return [e.metadata() for e in index.all_live()], index.index_id, index.seq

    def metadata(self, path: str) -> FileMetadata | None:
        entry = self.lookup(checked_path(path))
        return None if entry is None else entry.metadata()

    def changes(
        self, since: int, index_id: str | None, limit: int, client_id: str | None
    ) -> ChangesPage:
        page = self.index.changes(since, index_id, limit)
        if client_id is not None:
            with self.index.transaction():
                self.index.set_client_cursor(client_id, page.cursor)
        return page

    def client_cursor(self, client_id: str) -> int | None:
        return self.index.client_cursor(client_id)

    def changes_since(self, since: int) -> tuple[list[Change], int]:
        """Changes committed after ``since`` (by any node) and the new cursor, for
        pushing other nodes' commits to this node's event clients; nothing when the
        journal no longer reaches back that far."""
        page = self.index.changes(since, None, 1000)
        if page.reset:
            return [], self.index.seq
        return list(page.changes), page.cursor

    def open_file(self, path: str) -> tuple[BinaryIO, FileMetadata]:
        """An open file and the metadata of exactly the bytes it holds."""
        path = checked_path(path)
        for _ in range(3):
            entry = self.lookup(path)
            if entry is None:
                raise StoreError(404, f"{path!r} does not exist")
            if entry.is_dir:
                raise StoreError(400, f"{path!r} is a folder")
            stream, seen = self.blobs.open_read(path)
            if matches(entry, seen):
                return stream, entry.metadata()
            stream.close()
        raise StoreError(409, f"{path!r} is being changed on the server; retry")

    def open_files(self, paths: list[str]) -> list[tuple[BinaryIO, FileMetadata] | StoreError]:
        """:meth:`open_file` for many paths, the index read for all of them at once.

        A path whose row matches the disk (its observation, links refused on the way,
        and the opened file's own stat) is served from that row, exactly as
        :meth:`lookup` would have returned it; any other path (unknown, a folder,
        changed by another program) goes the usual way, which records the change."""
        valid = []
        for path in paths:
            with contextlib.suppress(StoreError):  # reported by the usual way below
                valid.append(checked_path(path))
        known = self.index.get_many(valid)
        opened: list[tuple[BinaryIO, FileMetadata] | StoreError] = []
        for path in paths:
            try:
                entry = known.get(path)
                fast = None
                if entry is not None and not entry.deleted and not entry.is_dir:
                    fast = self._open_known(path, entry)
                opened.append(fast if fast is not None else self.open_file(path))
            except StoreError as error:
                opened.append(error)
            except OSError as error:  # gone or replaced since it was indexed
                opened.append(StoreError(409, f"{path!r} cannot be read now: {error}"))
        return opened

    def _open_known(self, path: str, entry: Entry) -> tuple[BinaryIO, FileMetadata] | None:
        """The file at ``path`` if both its observation and the opened file match
        ``entry``; ``None`` otherwise (nothing is recorded here)."""
        if not matches(entry, self.blobs.observe(path)):
            return None
        stream, seen = self.blobs.open_read(path)
        if matches(entry, seen):
            return stream, entry.metadata()
        stream.close()
        return None

    # -- writes ------------------------------------------------------------------------

    def _conflict(
        self, path: str, local: FileMetadata | None, current: Entry | None, why: str
    ) -> Conflict:
        remote = None if current is None else current.metadata()
        return Conflict(ConflictInfo(path, local, remote), f"{path}: {why}")

    def precheck(self, path: str, conditions: Preconditions, expected_hash: str | None) -> None:
        """Fail fast (before the body is staged) when the conditions cannot hold.

        Identical content is never a conflict, so without the body's declared hash a
        violated condition is left for :meth:`commit_upload` to judge."""
        self.refuse_clash(path)
        current = self.lookup(path)
        if current is not None and current.is_dir:
            raise StoreError(409, f"{path!r} is a folder")
        why = conditions.violated_by(current)
        if why is None or expected_hash is None:
            return
        if current is None or current.hash != expected_hash:
            raise self._conflict(path, None, current, why)

    @_serial
    def commit_upload(
        self,
        path: str,
        staged: Staged,
        conditions: Preconditions,
        origin: str | None,
        modified_ns: int | None,
    ) -> tuple[FileMetadata, Literal["created", "updated", "unchanged"]]:
        """Rename a staged upload into place if the conditions still hold."""
        try:
            for _attempt in range(3):
                self.refuse_clash(path, self._staged_metadata(path, staged, modified_ns))
                current = self.lookup(path)
                if current is not None and current.is_dir:
                    raise StoreError(409, f"{path!r} is a folder")
                if current is not None and current.hash == staged.hash:
                    staged.discard()
                    return current.metadata(), "unchanged"
                why = conditions.violated_by(current)
                if why is not None:
                    local = self._staged_metadata(path, staged, modified_ns)
                    raise self._conflict(path, local, current, why)
                with self.index.transaction():
                    self._make_parents(path, origin)
                    # Another program may have written the path since lookup verified
                    # it: look again (that edit is recorded and judged) instead of
                    # overwriting it.
                    seen = self.blobs.place(staged, path, functools.partial(matches, current))
                    if seen is None:
                        continue
                    entry = self._record(path, seen, staged.hash, origin)
                return entry.metadata(), "created" if current is None else "updated"
            raise StoreError(409, f"{path!r} is being changed on the server; retry")
        except BaseException:
            staged.discard()
            raise

    def _staged_metadata(self, path: str, staged: Staged, modified_ns: int | None) -> FileMetadata:
        modified = datetime.fromtimestamp((modified_ns or now_ns()) / 1e9, UTC)
        return FileMetadata(path, staged.size, modified, staged.hash)

    @_serial
    def delete(self, path: str, base_hash: str | None, origin: str | None) -> Entry | None:
        """Delete a file or an empty folder; ``None`` when it was already gone."""
        path = checked_path(path)
        current = self.lookup(path)
        if current is None:
            return None
        if base_hash is not None and current.hash != base_hash:
            raise self._conflict(path, None, current, f"the current hash is {current.hash}")
        with self.index.transaction():
            self.blobs.remove(path, current.is_dir)
            self._forget(path, origin)
        return self.index.get(path)

    @_serial
    def mkdir(self, path: str, origin: str | None) -> Entry | None:
        """Create a folder (and its parents); ``None`` when it already existed."""
        path = checked_path(path)
        self.refuse_clash(path, FileMetadata(path, 0, datetime.now(UTC), "", True))
        current = self.lookup(path)
        if current is not None:
            if current.is_dir:
                return None
            raise self._conflict(path, None, current, "a file has this path")
        with self.index.transaction():
            self._make_parents(path, origin)
            return self._record(path, self.blobs.make_folder(path), "", origin)

    @_serial
    def move(
        self, source: str, target: str, base_hash: str | None, origin: str | None
    ) -> Entry | None:
        """Rename a file or folder; the target must not exist. ``None`` for a no-op."""
        source, target = checked_path(source), checked_path(target)
        current = self.lookup(source)
        if current is None:
            raise StoreError(404, f"{source!r} does not exist")
        if base_hash is not None and current.hash != base_hash:
            raise self._conflict(source, None, current, f"the current hash is {current.hash}")
        if source == target:
            return None
        if target.startswith(source + "/"):
            raise StoreError(400, f"cannot move {source!r} into itself")
        self.refuse_clash(target, current.metadata(), moving=source)
        existing = self.lookup(target)
        if existing is not None:
            raise self._conflict(target, current.metadata(), existing, "the target exists")
        moved = [current, *self.index.children(source)] if current.is_dir else [current]
        with self.index.transaction():
            self._make_parents(target, origin)
            self.blobs.move(source, target)
            self._forget(source, origin)
            result = None
            for entry in moved:
                new_path = target + entry.path[len(source) :]
                seen = self.blobs.observe(new_path)
                if seen is None:  # rolled back: the index keeps the source
                    raise FileNotFoundError(f"{new_path!r} vanished while being moved")
                recorded = self._record(new_path, seen, entry.hash, origin)
                result = result or recorded
            return result

    # -- POST /api/sync ----------------------------------------------------------------

    @_serial
    def apply_sync(self, request: SyncRequest, origin: str | None) -> SyncResponse:
        """Apply each operation in order; report each one; return what the client lacks."""
        results: list[OperationResult] = []
        conflicts: list[ConflictInfo] = []
        for number, op in enumerate(request.operations):
            try:
                results.append(self._apply_one(number, op, origin))
            except Conflict as conflict:
                conflicts.append(conflict.info)
                results.append(
                    OperationResult(number, "conflict", conflict.info.path, None, conflict.message)
                )
            except StoreError as error:
                results.append(OperationResult(number, "error", _op_path(op), None, error.message))
            except OSError as error:
                results.append(
                    OperationResult(number, "error", _op_path(op), None, error.strerror or "")
                )
        return self._catch_up(origin or request.client_id, results, conflicts)

    def _apply_one(self, number: int, op: SyncOperation, origin: str | None) -> OperationResult:
        if isinstance(op, Delete):
            tomb = self.delete(op.path, op.base_hash, origin)
            if tomb is None or not tomb.deleted:
                return OperationResult(number, "unchanged", op.path)
            return OperationResult(number, "applied", op.path, tomb.seq)
        if isinstance(op, Move):
            moved = self.move(op.from_path, op.to_path, op.base_hash, origin)
            if moved is None:
                return OperationResult(number, "unchanged", op.to_path)
            return OperationResult(number, "applied", op.to_path, moved.seq)
        meta = op.metadata
        self.refuse_clash(meta.path, meta)
        if meta.is_directory:
            made = self.mkdir(meta.path, origin)
            if made is None:
                return OperationResult(number, "unchanged", meta.path)
            return OperationResult(number, "applied", meta.path, made.seq)
        current = self.lookup(meta.path)
        if current is not None and current.hash == meta.hash:
            return OperationResult(number, "unchanged", meta.path)
        if isinstance(op, Create) and current is not None:
            raise self._conflict(meta.path, meta, current, "the path exists with other content")
        stale = isinstance(op, Update) and op.base_hash is not None
        if stale and (current is None or current.hash != op.base_hash):  # type: ignore[union-attr]
            raise self._conflict(meta.path, meta, current, "the base hash is stale")
        return OperationResult(number, "upload_required", meta.path)

    def _catch_up(
        self, client_id: str, results: list[OperationResult], conflicts: list[ConflictInfo]
    ) -> SyncResponse:
        since = self.index.client_cursor(client_id) or 0
        page = self.index.changes(since, None, 1000)
        if page.reset:
            page = self.index.changes(0, None, 1000)
        operations: list[SyncOperation] = []
        for change in page.changes:
            if change.origin == client_id and change.origin is not None:
                continue
            if change.metadata is None:
                operations.append(Delete(change.path))
            elif change.op == "create":
                operations.append(Create(change.metadata))
            else:
                operations.append(Update(change.metadata))
        with self.index.transaction():
            self.index.set_client_cursor(client_id, page.cursor)
        return SyncResponse(
            tuple(operations), tuple(conflicts), tuple(results), page.cursor, page.index_id
        )

    # -- scanning ----------------------------------------------------------------------

    def snapshot(self, under: str | None = None) -> dict[str, Entry]:
        """Live rows: all of them, or those strictly below the folder ``under``."""
        rows = self.index.all_live() if under is None else self.index.children(under)
        return {entry.path: entry for entry in rows}

    def apply_scan(self, known: Mapping[str, Entry], found: Mapping[str, Seen]) -> list[Change]:
        """Record what a walk found (``found``, from :func:`observe_folder` over
        ``known``), skipping every path a commit touched meanwhile and every file that
        changed again since it was hashed."""
        self.check_folder()
        before = len(self._changes)
        try:
            self._apply_found(known, found)
        except BaseException:
            del self._changes[before:]  # rolled back: nothing to announce
            raise
        return self._changes[before:]

    def _apply_found(self, known: Mapping[str, Entry], found: Mapping[str, Seen]) -> None:
        index = self.index
        with index.transaction():
            for path in sorted(found):
                seen = found[path]
                if seen is None:
                    continue
                current = index.live(path)
                snap = known.get(path)
                if (current.seq if current else None) != (snap.seq if snap else None):
                    continue
                if self._still(path) != seen[0]:
                    continue
                self._apply_seen(path, current, seen)
            for path in sorted(set(known) - set(found), reverse=True):
                current = index.live(path)
                if current is None or current.seq != known[path].seq:
                    continue
                if self._still(path) is not None:
                    continue
                self._forget(path, None)

    def _still(self, path: str) -> Observed | None:
        """What is at ``path`` now; None also for what the store never syncs (a link)."""
        try:
            return self.blobs.observe(path)
        except StoreError:
            return None

    def _apply_seen(self, path: str, current: Entry | None, seen: tuple[Observed, str]) -> None:
        observed, hash_hex = seen
        if current is not None and current.is_dir == observed.is_dir:
            if current.is_dir:
                return
            if current.hash == hash_hex:
                if not matches(current, observed):
                    self.index.touch(path, observed.mtime_ns, observed.inode)
                return
        if current is not None and current.is_dir != observed.is_dir:
            self._forget(path, None)
        self._record(path, observed, hash_hex, None)

    def rescan(self, under: str | None = None) -> list[Change]:
        """Walk, hash and record in one go on this thread (startup, tests); only below
        the folder ``under`` when given."""
        known = self.snapshot(under)
        return self.apply_scan(known, observe_folder(self.blobs, known, under))

    def refresh(self, paths: list[str]) -> list[Change]:
        """Re-check single paths a watcher reported (and their parents, first), in one
        transaction: with ``synchronous=FULL`` a commit per path would cost an fsync
        each (10,000 files written at once: most of a minute of the index thread)."""
        before = len(self._changes)
        done: set[str] = set()
        with self.index.transaction():
            for path in paths:
                parts = path.split("/")
                for depth in range(1, len(parts) + 1):
                    prefix = "/".join(parts[:depth])
                    if prefix in done:
                        continue
                    done.add(prefix)
                    try:
                        self.lookup(checked_path(prefix))
                    except (StoreError, OSError):
                        break
        return self._changes[before:]

    def purge_tombstones(self, older_than: float) -> int:
        return self.index.purge_tombstones(older_than)


def _op_path(op: SyncOperation) -> str:
    if isinstance(op, Delete):
        return op.path
    if isinstance(op, Move):
        return op.from_path
    return op.metadata.path


def entries_equal_scan(core: LocalStoreCore) -> tuple[dict[str, object], dict[str, object]]:
    """(index view, fresh scan view) as comparable dicts: for checks and tests."""
    index_view: dict[str, object] = {
        e.path: ("dir",) if e.is_dir else (e.size, e.hash) for e in core.index.all_live()
    }
    scan_view: dict[str, object] = {}
    for path, seen in observe_folder(core.blobs, {}).items():
        if seen is None:
            continue
        observed, hash_hex = seen
        scan_view[path] = ("dir",) if observed.is_dir else (observed.size, hash_hex)
    return index_view, scan_view
