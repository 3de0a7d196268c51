"""The sync index on PostgreSQL: several ``file_sync`` nodes serving one shared folder.

``"index": {"module": "postgres", "connection_string": "postgres://...", "name": "..."}``
puts the index of a ``file_sync`` folder (paths, journal, tombstones, client cursors) in
the schema ``caddytw_sync_<name>`` of that database, so every node that mounts the same
folder and names the same index shares one journal and one sequence.

How the single-node guarantees carry over (see :class:`caddytw.sync.index.Index`):

- **Writes are serialized per folder.** Every write transaction first takes the
  transaction-level advisory lock of the folder (``pg_advisory_xact_lock``), as SQLite's
  ``BEGIN IMMEDIATE`` takes the database's write lock. A check-then-commit sequence
  (``If-Match`` / ``If-None-Match: *``: look up, compare, rename into place, record)
  runs inside one such transaction (:meth:`PgSyncIndex.serialized`), so two nodes
  creating one new path give one 201 and one 412, exactly as two clients of one node.
- **Sequence numbers follow commit order.** The counter is one row updated under that
  lock; a reader never sees seq N+1 committed before N, so "changes since my cursor"
  misses nothing. Reads that must agree with each other (a listing and its cursor, a
  page of changes and its cursor) run in one ``REPEATABLE READ`` snapshot.
- **Events fan out.** The transaction that consumed sequence numbers sends
  ``NOTIFY caddytw_sync_<name>`` (delivered at commit); every node ``LISTEN``\\ s on a
  connection of its own (:class:`ChangeListener`) and pushes the changes since its
  last cursor to its own WebSocket clients.
- **One rescan at a time.** A full rescan of the folder holds the session advisory lock
  of the folder (``pg_try_advisory_lock``); a node that finds it taken skips its turn.
  A node that dies mid-rescan loses its session and so the lock.

Blocking; one index is used from the store's index thread only.
"""

from __future__ import annotations

import re
import secrets
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.logger import Logger

from caddytw.postgres import (
    ChangeListener,
    Database,
    DatabaseUnavailable,
    is_unavailable,
    release_database,
)
from caddytw.sync.folder import keeps_work
from caddytw.sync.home import FolderUnavailable
from caddytw.sync.index import MAX_CLIENTS, Entry, Index
from caddytw.sync.protocol import ChangesPage, fold_key

log = Logger()

#: First key of caddytw's advisory locks ("cdtw"); the second is the folder's.
LOCK_CLASS = 0x63647477
#: First key of the rescan lock.
RESCAN_CLASS = LOCK_CLASS + 1
NAME_RE = re.compile(r"[a-z0-9_]{1,40}")
INODE_WRAP = 1 << 64

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    index_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    purged_seq BIGINT NOT NULL,
    temp_secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.entries (
    path TEXT COLLATE "C" PRIMARY KEY,
    is_dir BOOLEAN NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    inode BIGINT NOT NULL,
    hash TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    op TEXT NOT NULL,
    origin TEXT,
    changed_at DOUBLE PRECISION NOT NULL,
    fold TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_fold ON {s}.entries (fold);
CREATE TABLE IF NOT EXISTS {s}.clients (
    id TEXT PRIMARY KEY, cursor BIGINT NOT NULL, seen_at DOUBLE PRECISION NOT NULL
);
"""


class IndexUnavailable(FolderUnavailable):
    """The index database cannot be reached: HTTP 503 (retry later); nothing was
    committed by the request that got it. At start it is a folder that cannot be
    served yet: the store tries again every few seconds, as for an unmounted disk."""


def schema_name(name: str) -> str:
    """The schema of the index called ``name`` (checked by the handler's config)."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"index name {name!r}: use 1-40 of a-z, 0-9 and _")
    return f"caddytw_sync_{name}"


def _lock_key(schema: str) -> int:
    return zlib.crc32(schema.encode()) & 0x7FFFFFFF


def _db_inode(inode: int) -> int:
    """``st_ino`` is unsigned 64-bit; BIGINT is signed."""
    return inode - INODE_WRAP if inode >= INODE_WRAP // 2 else inode


def _entry(row: dict[str, Any]) -> Entry:
    inode = int(row["inode"])
    return Entry(
        row["path"],
        bool(row["is_dir"]),
        int(row["size"]),
        int(row["mtime_ns"]),
        inode + INODE_WRAP if inode < 0 else inode,
        row["hash"],
        bool(row["deleted"]),
        int(row["seq"]),
        row["op"],
        row["origin"],
    )


@contextmanager
def _translated(database: Database) -> Iterator[None]:
    """Database outages become :class:`IndexUnavailable` (503), other errors stay."""
    try:
        yield
    except IndexUnavailable:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise IndexUnavailable(
                f"the sync index database {database.name} is unavailable: {error}".strip()
            ) from None
        raise


class PgLocation:
    """The index ``name`` in ``database`` (see :class:`caddytw.sync.index.IndexLocation`)."""

    def __init__(self, database: Database, name: str) -> None:
        self.database = database
        self.schema = schema_name(name)

    def describe(self) -> str:
        return f"{self.database.name} (schema {self.schema})"

    def prepare(self, root: object) -> bool:
        return False

    def exists(self) -> bool:
        with _translated(self.database), self.database.connection() as conn:
            row = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.state",)).fetchone()
            if row is None or row[0] is None:
                return False
            found = conn.execute(f"SELECT 1 FROM {self.schema}.state").fetchone()
            return found is not None

    def open(self, existed: bool) -> PgSyncIndex:
        return PgSyncIndex(self.database, self.schema)

    def close(self) -> None:
        release_database(self.database)

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``on_change`` (on a thread of its own) after every commit of any node,
        and after each (re)connection; returns the function that stops it."""
        listener = ChangeListener(self.database, self.schema, on_change)
        listener.start()
        return listener.stop


class PgSyncIndex(Index):
    """The index in schema ``schema`` (created on first use)."""

    shared = True

    def __init__(self, database: Database, schema: str, clock: object = time.time) -> None:
        self.db = database
        self.schema = schema
        self._key = _lock_key(schema)
        self._clock = clock
        self._tx: Any = None
        self._read_only = False
        self._notify = 0
        self._cursor_writes = 0
        self._rescan_conn: Any = None
        with self.transaction() as conn:
            conn.execute(SCHEMA.format(s=schema))
            created = conn.execute(
                f"INSERT INTO {schema}.state (id, index_id, seq, purged_seq, temp_secret) "
                "VALUES (1, %s, 0, 0, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
                (secrets.token_hex(8), secrets.token_hex(16)),
            ).fetchone()
            row = conn.execute(f"SELECT index_id, temp_secret FROM {schema}.state").fetchone()
        self.created = created is not None
        self.index_id: str = row[0]
        self.temp_secret = bytes.fromhex(row[1])

    # -- plumbing ----------------------------------------------------------------------

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._tx is not None:
            yield self._tx
            return
        with _translated(self.db), self.db.connection() as conn:
            yield conn

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with _translated(self.db), self._connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            return list(cursor.execute(sql.format(s=self.schema), params).fetchall())

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        if self._tx is None or self._read_only:
            raise RuntimeError("index writes belong inside index.transaction()")
        with _translated(self.db):
            return int(self._tx.execute(sql.format(s=self.schema), params).rowcount)

    @contextmanager
    def _begin(self, statement: str, keep: Callable[[BaseException], bool]) -> Iterator[Any]:
        if self._tx is not None:
            if self._read_only and not statement.startswith("BEGIN ISOLATION"):
                raise RuntimeError("a write transaction inside a read snapshot")
            yield self._tx
            return
        with _translated(self.db):
            try:
                conn = self.db.getconn()
            except DatabaseUnavailable as error:
                raise IndexUnavailable(str(error)) from None
        self._tx = conn
        self._read_only = statement.startswith("BEGIN ISOLATION")
        self._notify = 0
        try:
            with _translated(self.db):
                conn.execute(statement)
                if not self._read_only:
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, self._key))
            try:
                yield conn
            except BaseException as error:
                if keep(error):
                    self._commit(conn)
                else:
                    with _translated(self.db):
                        conn.execute("ROLLBACK")
                raise
            self._commit(conn)
        finally:
            self._tx = None
            self._read_only = False
            self.db.putconn(conn)

    def _commit(self, conn: Any) -> None:
        with _translated(self.db):
            if self._notify:
                conn.execute("SELECT pg_notify(%s, %s)", (self.schema, str(self._notify)))
                self._notify = 0
            conn.execute("COMMIT")

    def transaction(self) -> Any:
        """``with index.transaction():`` one transaction holding the folder's write lock
        (nestable: only the outermost one commits; any error rolls it back)."""
        return self._begin("BEGIN", lambda error: False)

    def serialized(self) -> Any:
        """A check-then-commit sequence: one write transaction that commits even when
        the sequence ends in a refusal (:func:`~caddytw.sync.folder.keeps_work`)."""
        return self._begin("BEGIN", keeps_work)

    def snapshot(self) -> Any:
        """Reads that see one state (outside a transaction: ``REPEATABLE READ``)."""
        return self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", lambda e: False)

    def close(self) -> None:
        self.unlock_rescan()

    # -- the rescan lock ---------------------------------------------------------------

    def try_lock_rescan(self) -> bool:
        """Take the folder's rescan lock for this node's session, if nobody holds it."""
        if self._rescan_conn is not None:
            return False
        with _translated(self.db):
            try:
                conn = self.db.getconn()
            except DatabaseUnavailable as error:
                raise IndexUnavailable(str(error)) from None
            try:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (RESCAN_CLASS, self._key)
                ).fetchone()
            except BaseException:
                self.db.putconn(conn)
                raise
        if row is not None and row[0]:
            self._rescan_conn = conn
            return True
        self.db.putconn(conn)
        return False

    def unlock_rescan(self) -> None:
        conn, self._rescan_conn = self._rescan_conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (RESCAN_CLASS, self._key))
        except Exception as error:  # the session is gone, and its lock with it
            if not is_unavailable(error):
                raise
        finally:
            self.db.putconn(conn)

    # -- reads -------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        row = self._one("SELECT seq FROM {s}.state")
        return 0 if row is None else int(row["seq"])

    def get(self, path: str) -> Entry | None:
        row = self._one("SELECT * FROM {s}.entries WHERE path = %s", (path,))
        return None if row is None else _entry(row)

    def clash(self, path: str) -> Entry | None:
        row = self._one(
            "SELECT * FROM {s}.entries WHERE fold = %s AND NOT deleted AND path <> %s LIMIT 1",
            (fold_key(path), path),
        )
        return None if row is None else _entry(row)

    def all_live(self) -> list[Entry]:
        return [_entry(row) for row in self._rows(_LIVE + " ORDER BY path")]

    def top_level_live(self) -> list[str]:
        rows = self._rows(
            "SELECT path FROM {s}.entries WHERE NOT deleted AND strpos(path, '/') = 0 LIMIT 1000"
        )
        return [str(row["path"]) for row in rows]

    def children(self, path: str) -> list[Entry]:
        rows = self._rows(
            _LIVE + " AND path >= %s AND path < %s ORDER BY path", (path + "/", path + "0")
        )
        return [_entry(row) for row in rows]

    def changes(self, since: int, index_id: str | None, limit: int) -> ChangesPage:
        with self.snapshot():
            state = self._one("SELECT seq, purged_seq FROM {s}.state")
            seq = int(state["seq"]) if state else 0
            purged = int(state["purged_seq"]) if state else 0
            if (index_id is not None and index_id != self.index_id) or not purged <= since <= seq:
                return ChangesPage(self.index_id, seq, reset=True)
            rows = self._rows(
                "SELECT * FROM {s}.entries WHERE seq > %s ORDER BY seq LIMIT %s",
                (since, limit + 1),
            )
        entries = [_entry(row) for row in rows[:limit]]
        more = len(rows) > limit
        cursor = entries[-1].seq if more else seq
        return ChangesPage(self.index_id, cursor, tuple(e.change() for e in entries), more=more)

    def client_cursor(self, client_id: str) -> int | None:
        row = self._one("SELECT cursor FROM {s}.clients WHERE id = %s", (client_id,))
        return None if row is None else int(row["cursor"])

    # -- writes (inside a transaction) --------------------------------------------------

    def touch(self, path: str, mtime_ns: int, inode: int) -> None:
        self._run(
            "UPDATE {s}.entries SET mtime_ns = %s, inode = %s WHERE path = %s",
            (mtime_ns, _db_inode(inode), path),
        )

    def _write(self, entry: Entry) -> Entry:
        if self._tx is None or self._read_only:
            raise RuntimeError("index writes belong inside index.transaction()")
        with _translated(self.db):
            seq = int(
                self._tx.execute(
                    f"UPDATE {self.schema}.state SET seq = seq + 1 RETURNING seq"
                ).fetchone()[0]
            )
        stored = Entry(**{**entry.__dict__, "seq": seq})
        self._run(
            "INSERT INTO {s}.entries (path, is_dir, size, mtime_ns, inode, hash, deleted, "
            "seq, op, origin, changed_at, fold) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (path) DO UPDATE SET is_dir = excluded.is_dir, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, inode = excluded.inode, hash = excluded.hash, "
            "deleted = excluded.deleted, seq = excluded.seq, op = excluded.op, "
            "origin = excluded.origin, changed_at = excluded.changed_at, fold = excluded.fold",
            (
                stored.path,
                stored.is_dir,
                stored.size,
                stored.mtime_ns,
                _db_inode(stored.inode),
                stored.hash,
                stored.deleted,
                seq,
                stored.op,
                stored.origin,
                self._now(),
                fold_key(stored.path),
            ),
        )
        self._notify = seq
        return stored

    def set_client_cursor(self, client_id: str, cursor: int) -> None:
        """As :meth:`caddytw.sync.index.SyncIndex.set_client_cursor`; the table is cut
        back to :data:`MAX_CLIENTS` rows every 100 writes of this node."""
        self._run(
            "INSERT INTO {s}.clients (id, cursor, seen_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, seen_at = excluded.seen_at",
            (client_id, cursor, self._now()),
        )
        self._cursor_writes += 1
        if self._cursor_writes % 100 == 0:
            self._run(
                "DELETE FROM {s}.clients WHERE id NOT IN "
                "(SELECT id FROM {s}.clients ORDER BY seen_at DESC LIMIT %s)",
                (MAX_CLIENTS,),
            )

    def purge_tombstones(self, older_than: float) -> int:
        with self.transaction():
            row = self._one(
                "SELECT max(seq) AS seq FROM {s}.entries WHERE deleted AND changed_at < %s",
                (older_than,),
            )
            if row is None or row["seq"] is None:
                return 0
            newest = int(row["seq"])
            count = self._run("DELETE FROM {s}.entries WHERE deleted AND seq <= %s", (newest,))
            self._run("UPDATE {s}.state SET purged_seq = greatest(purged_seq, %s)", (newest,))
            return count


_LIVE = "SELECT * FROM {s}.entries WHERE NOT deleted"
