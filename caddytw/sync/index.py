"""The sync index: one SQLite row per path, a global change sequence, tombstones, and
each client's last cursor.

Blocking; one :class:`SyncIndex` is used from one thread only (SQLite connections are
bound to the thread that made them). Every change gets the next sequence number and
replaces the path's row, so ``rows with seq > N`` is exactly "what changed since N",
one row per path with its latest state, tombstones included.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from caddytw.sync.protocol import Change, ChangeOp, ChangesPage, FileMetadata, fold_key

#: Most client cursors kept (least recently seen dropped first).
MAX_CLIENTS = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    path TEXT PRIMARY KEY,
    is_dir INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    hash TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    seq INTEGER NOT NULL UNIQUE,
    op TEXT NOT NULL,
    origin TEXT,
    changed_at REAL NOT NULL,
    fold TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY, cursor INTEGER NOT NULL, seen_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Entry:
    """One index row."""

    path: str
    is_dir: bool
    size: int
    mtime_ns: int
    inode: int
    hash: str
    deleted: bool
    seq: int
    op: ChangeOp
    origin: str | None

    def metadata(self) -> FileMetadata:
        seconds, nanos = divmod(self.mtime_ns, 1_000_000_000)
        modified = datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
        return FileMetadata(self.path, self.size, modified, self.hash, self.is_dir)

    def change(self) -> Change:
        return Change(
            self.seq, self.path, self.op, self.origin, None if self.deleted else self.metadata()
        )


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        row["path"],
        bool(row["is_dir"]),
        row["size"],
        row["mtime_ns"],
        row["inode"],
        row["hash"],
        bool(row["deleted"]),
        row["seq"],
        row["op"],
        row["origin"],
    )


#: Paths per query in :meth:`SQLiteIndex.get_many` (SQLite allows 999 variables in
#: old builds).
_MANY = 500


class Index(abc.ABC):
    """What :class:`~caddytw.sync.core.LocalStoreCore` needs of an index: the SQLite
    :class:`SyncIndex` (one node) or :class:`caddytw.sync.pgindex.PgSyncIndex` (several
    nodes on one PostgreSQL). Blocking; used from the store's index thread only.

    ``transaction()`` groups writes; ``serialized()`` makes a check-then-commit sequence
    atomic against every other writer of the index (other nodes); ``snapshot()`` makes
    several reads see one state. ``shared`` says whether other processes write the same
    index (then temp files of uploads in flight may be theirs)."""

    created: bool
    index_id: str
    temp_secret: bytes
    shared: bool

    @property
    @abc.abstractmethod
    def seq(self) -> int: ...
    @abc.abstractmethod
    def close(self) -> None: ...
    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[object]: ...
    @abc.abstractmethod
    def serialized(self) -> AbstractContextManager[object]: ...
    @abc.abstractmethod
    def snapshot(self) -> AbstractContextManager[object]: ...
    @abc.abstractmethod
    def try_lock_rescan(self) -> bool: ...
    @abc.abstractmethod
    def unlock_rescan(self) -> None: ...
    @abc.abstractmethod
    def get(self, path: str) -> Entry | None: ...
    @abc.abstractmethod
    def clash(self, path: str) -> Entry | None: ...
    @abc.abstractmethod
    def all_live(self) -> list[Entry]: ...
    @abc.abstractmethod
    def top_level_live(self) -> list[str]: ...
    @abc.abstractmethod
    def children(self, path: str) -> list[Entry]: ...
    @abc.abstractmethod
    def changes(self, since: int, index_id: str | None, limit: int) -> ChangesPage: ...
    @abc.abstractmethod
    def client_cursor(self, client_id: str) -> int | None: ...
    @abc.abstractmethod
    def touch(self, path: str, mtime_ns: int, inode: int) -> None: ...
    @abc.abstractmethod
    def set_client_cursor(self, client_id: str, cursor: int) -> None: ...
    @abc.abstractmethod
    def purge_tombstones(self, older_than: float) -> int: ...
    @abc.abstractmethod
    def _write(self, entry: Entry) -> Entry:
        """Store ``entry`` under the next sequence number (inside a transaction)."""

    # The journal's rules, the same over any storage: a recorded path gets the next
    # sequence number (``create`` or ``update``), a deletion is a tombstone with one.

    def live(self, path: str) -> Entry | None:
        entry = self.get(path)
        return None if entry is None or entry.deleted else entry

    def get_many(self, paths: list[str]) -> dict[str, Entry]:
        """:meth:`get` for many paths: the rows found (tombstones included), by path.
        Storages override it with fewer round trips."""
        found = {}
        for path in paths:
            entry = self.get(path)
            if entry is not None:
                found[path] = entry
        return found

    def record(
        self,
        path: str,
        observed_is_dir: bool,
        size: int,
        mtime_ns: int,
        inode: int,
        hash_hex: str,
        origin: str | None,
    ) -> Entry:
        """A path now exists with this state: a new sequence number and its change."""
        op: ChangeOp = "create" if self.live(path) is None else "update"
        return self._write(
            Entry(path, observed_is_dir, size, mtime_ns, inode, hash_hex, False, 0, op, origin)
        )

    def tombstone(self, path: str, origin: str | None) -> Entry | None:
        previous = self.live(path)
        if previous is None:
            return None
        return self._write(Entry(path, previous.is_dir, 0, 0, 0, "", True, 0, "delete", origin))


class IndexLocation(Protocol):
    """Where a folder's index lives, so :meth:`LocalStoreCore.open` can tell a new index
    from an existing one before opening it (see :mod:`caddytw.sync.home`)."""

    def describe(self) -> str:
        """For messages: the file, or the database and schema."""

    def prepare(self, root: Path) -> bool:
        """Move an index from an older place; True when something was moved."""

    def exists(self) -> bool: ...

    def open(self, existed: bool) -> Index:
        """Open the index, creating it when it does not exist."""

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``on_change`` (from any thread) when another process committed changes;
        the function that stops watching, or ``None`` when nobody else writes."""

    def close(self) -> None:
        """Release what the location holds (a database pool) when the store stops."""


class SqliteLocation:
    """The default: one SQLite file in Caddy's data directory (:mod:`caddytw.sync.home`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def prepare(self, root: Path) -> bool:
        from caddytw.sync.home import migrate_legacy

        return migrate_legacy(root, self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def open(self, existed: bool) -> Index:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not existed:  # a WAL left by a lost index must not be replayed into a new one
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return SyncIndex(self.path)

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None] | None:
        return None

    def close(self) -> None:
        pass


class SyncIndex(Index):
    """The SQLite index at ``db_path``; ``created`` tells whether it was new (so the
    caller rebuilds it from the folder)."""

    def __init__(self, db_path: Path, clock: object = time.time) -> None:
        self.created = not db_path.exists()
        self.shared = False
        self.db = sqlite3.connect(db_path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that answered a client survives a power cut. NORMAL could roll
        # the index back and hand out again sequence numbers clients already passed.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._add_fold_keys()
        self._clock = clock
        with self.transaction():
            if self._meta("index_id") is None:
                self._set_meta("index_id", secrets.token_hex(8))
                self._set_meta("seq", "0")
                self._set_meta("purged_seq", "0")
            if self._meta("temp_secret") is None:  # signs our temp files' names
                self._set_meta("temp_secret", secrets.token_hex(16))
        self.index_id: str = self._meta("index_id") or ""
        self.temp_secret = bytes.fromhex(self._meta("temp_secret") or "")
        self._client_rows = int(self.db.execute("SELECT count(*) FROM clients").fetchone()[0])

    @property
    def seq(self) -> int:
        """The newest sequence number (read from the database, so two stores on one
        index, as during a config reload, never hand out the same number)."""
        return int(self._meta("seq") or 0)

    def close(self) -> None:
        self.db.close()

    # -- plumbing ----------------------------------------------------------------------

    def transaction(self) -> sqlite3.Connection:
        """``with index.transaction():`` groups writes (BEGIN IMMEDIATE ... COMMIT)."""
        return _Transaction(self)  # type: ignore[return-value]

    def serialized(self) -> AbstractContextManager[object]:
        """Nothing to do: one process, one index thread, every call runs alone."""
        return contextlib.nullcontext()

    def snapshot(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def try_lock_rescan(self) -> bool:
        return True

    def unlock_rescan(self) -> None:
        pass

    def _add_fold_keys(self) -> None:
        """Give an index made before fold keys existed its ``fold`` column, filled in
        (once), and the lookup index on it."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(entries)")}
        if "fold" not in columns:
            self.db.create_function("fold_key", 1, fold_key, deterministic=True)
            with self.transaction():
                self.db.execute("ALTER TABLE entries ADD COLUMN fold TEXT NOT NULL DEFAULT ''")
                self.db.execute("UPDATE entries SET fold = fold_key(path)")
        self.db.execute("CREATE INDEX IF NOT EXISTS entries_fold ON entries (fold)")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    # -- reads -------------------------------------------------------------------------

    def get(self, path: str) -> Entry | None:
        """The row for ``path`` (tombstones included)."""
        row = self.db.execute("SELECT * FROM entries WHERE path = ?", (path,)).fetchone()
        return None if row is None else _entry(row)

    def get_many(self, paths: list[str]) -> dict[str, Entry]:
        """One query per :data:`_MANY` paths instead of one per path (a batch download
        of 1,000 files asked 1,000 times)."""
        found = {}
        for start in range(0, len(paths), _MANY):
            chunk = paths[start : start + _MANY]
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT * FROM entries WHERE path IN ({marks})"
            for row in self.db.execute(query, chunk):
                entry = _entry(row)
                found[entry.path] = entry
        return found

    def clash(self, path: str) -> Entry | None:
        """A live row whose path differs from ``path`` only in case or Unicode
        normalisation (the two would be one file on macOS or Windows)."""
        row = self.db.execute(
            "SELECT * FROM entries WHERE fold = ? AND deleted = 0 AND path != ? LIMIT 1",
            (fold_key(path), path),
        ).fetchone()
        return None if row is None else _entry(row)

    def all_live(self) -> list[Entry]:
        rows = self.db.execute("SELECT * FROM entries WHERE deleted = 0 ORDER BY path")
        return [_entry(row) for row in rows]

    def top_level_live(self) -> list[str]:
        """Live paths without a ``/`` (to tell the folder from an empty mount point)."""
        rows = self.db.execute(
            "SELECT path FROM entries WHERE deleted = 0 AND instr(path, '/') = 0 LIMIT 1000"
        )
        return [str(row[0]) for row in rows]

    def children(self, path: str) -> list[Entry]:
        """Live rows strictly below folder ``path``.

        A range on the primary key (``"p/" <= path < "p0"``, ``0`` being the character
        after ``/``), so it reads only the folder's rows instead of scanning the table."""
        rows = self.db.execute(
            "SELECT * FROM entries WHERE path >= ? AND path < ? AND deleted = 0 ORDER BY path",
            (path + "/", path + "0"),
        )
        return [_entry(row) for row in rows]

    def changes(self, since: int, index_id: str | None, limit: int) -> ChangesPage:
        purged = int(self._meta("purged_seq") or 0)
        if (
            (index_id is not None and index_id != self.index_id)
            or since > self.seq
            or (since < purged)
        ):
            return ChangesPage(self.index_id, self.seq, reset=True)
        rows = self.db.execute(
            "SELECT * FROM entries WHERE seq > ? ORDER BY seq LIMIT ?", (since, limit + 1)
        ).fetchall()
        entries = [_entry(row) for row in rows[:limit]]
        more = len(rows) > limit
        cursor = entries[-1].seq if more else self.seq
        return ChangesPage(self.index_id, cursor, tuple(e.change() for e in entries), more=more)

    def client_cursor(self, client_id: str) -> int | None:
        row = self.db.execute("SELECT cursor FROM clients WHERE id = ?", (client_id,)).fetchone()
        return None if row is None else int(row[0])

    # -- writes (call inside a transaction) ---------------------------------------------

    def touch(self, path: str, mtime_ns: int, inode: int) -> None:
        """Same content, new stat (e.g. ``touch``): no change for clients, no new seq."""
        self.db.execute(
            "UPDATE entries SET mtime_ns = ?, inode = ? WHERE path = ?", (mtime_ns, inode, path)
        )

    def _write(self, entry: Entry) -> Entry:
        seq = self.seq + 1
        stored = Entry(**{**entry.__dict__, "seq": seq})
        self.db.execute(
            "INSERT OR REPLACE INTO entries (path, is_dir, size, mtime_ns, inode, hash, "
            "deleted, seq, op, origin, changed_at, fold) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored.path,
                int(stored.is_dir),
                stored.size,
                stored.mtime_ns,
                stored.inode,
                stored.hash,
                int(stored.deleted),
                stored.seq,
                stored.op,
                stored.origin,
                self._now(),
                fold_key(stored.path),
            ),
        )
        self._set_meta("seq", str(seq))
        return stored

    def set_client_cursor(self, client_id: str, cursor: int) -> None:
        """Record ``client_id``'s cursor; beyond :data:`MAX_CLIENTS` rows the least
        recently seen clients are forgotten (without tokens any caller can name a new
        client; a forgotten one only gets a longer catch-up, from the start)."""
        self.db.execute(
            "INSERT OR REPLACE INTO clients (id, cursor, seen_at) VALUES (?, ?, ?)",
            (client_id, cursor, self._now()),
        )
        self._client_rows += 1
        if self._client_rows > MAX_CLIENTS:
            self.db.execute(
                "DELETE FROM clients WHERE id NOT IN "
                "(SELECT id FROM clients ORDER BY seen_at DESC, rowid DESC LIMIT ?)",
                (MAX_CLIENTS,),
            )
            self._client_rows = int(self.db.execute("SELECT count(*) FROM clients").fetchone()[0])

    def purge_tombstones(self, older_than: float) -> int:
        """Forget deletions older than ``older_than`` (a timestamp); cursors before the
        newest purged one then get ``reset``."""
        with self.transaction():
            row = self.db.execute(
                "SELECT max(seq) FROM entries WHERE deleted = 1 AND changed_at < ?",
                (older_than,),
            ).fetchone()
            if row[0] is None:
                return 0
            cursor = self.db.execute(
                "DELETE FROM entries WHERE deleted = 1 AND seq <= ?", (row[0],)
            )
            purged = max(int(self._meta("purged_seq") or 0), int(row[0]))
            self._set_meta("purged_seq", str(purged))
            return int(cursor.rowcount)


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, nestable (only the outermost one commits)."""

    def __init__(self, index: SyncIndex) -> None:
        self.db = index.db
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if not self.outer:
            return
        if kind is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
