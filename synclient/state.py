"""The client's memory between runs: a small SQLite database inside the synced folder.

It lives in ``<root>/.synclient/state.db`` (the scanner never reports that folder, so it
is never synced) and holds, per path, the merge base (the content both sides last agreed
on, with the local stat seen then), a stat-keyed hash cache that spares rehashing
unchanged files, the last known server listing, and the server cursor and index id.

Everything is loaded into dictionaries at open and written through, so lookups during a
sync never touch SQLite; writes are batched in one transaction per sync step, a whole
pass of transfers included, committed every so often. WAL mode with
``synchronous=FULL``: a committed row survives a power cut, and a file's rename into
place is made durable (file and folder fsynced) before the row naming it is written, so
the state never claims a file was synced when the disk does not hold it (with
``NORMAL`` a power cut could roll back commits and leave the base naming bytes that
were never durable, or forget a sync that was).
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from caddytw.sync.localfs import StatKey as Stat
from synclient.planner import Version

STATE_DIR = ".synclient"
"""The hidden folder in the synced root holding the database; never synced."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS base (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS local_cache (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS remote (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL,
    origin TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    hash: str
    stat: Stat


def server_key(url: str) -> str:
    """The identity of a server URL for its state (``http://H:P/`` = ``http://h:p``)."""
    parts = urlsplit(url.strip())
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_SCHEMA)
    return db


def _meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _keyed(folder: Path, key: str) -> Path:
    return folder / f"state-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.db"


def _owns_primary(folder: Path, owner: str | None, key: str, keys: list[str]) -> bool:
    """Whether the server ``key`` (one of the folder's ``keys``, in order) keeps its
    state in ``state.db``, whose recorded server is ``owner``."""
    if owner == key:
        return True
    if owner in keys or _keyed(folder, key).exists():
        return False
    # Nobody configured owns it: a single server reached under another URL (a proxy, a
    # new host name) carries on with it, as it always did; the index id still decides
    # whether its base is valid.
    waiting = [k for k in keys if not _keyed(folder, k).exists()]
    return bool(waiting) and waiting[0] == key


#: The per-path tables whose writes :class:`StateDB` buffers until commit.
_ROW_TABLES = ("base", "local_cache", "remote")


class StateDB:
    """Open (creating if needed) the state of the folder ``root`` with one server.

    Each server a folder syncs with has its own merge base, listing and cursor: a
    three-way decision against server 2 must compare with what *server 2* last agreed
    on, not server 1 (otherwise a download from server 1 would look like "nothing
    changed" to server 2, and the change would never reach it). The state is found by
    the server's URL (``servers``: all of the folder's, in order) and checked by its
    index id (another index is a fresh merge). ``state.db`` belongs to the server
    recorded in it, or else to the first server without a state of its own (so a
    single server keeps its state whatever URL reaches it, and a state written before
    servers were recorded is adopted); every other server has ``state-<key>.db``.
    All of them share the primary file's client id: one folder is one client. The local
    hash cache is per file, which only costs a rehash of a changed file per server.
    ``server=None`` opens ``state.db`` whoever owns it (tools and tests)."""

    def __init__(self, root: Path, server: str | None = None, servers: Iterable[str] = ()) -> None:
        folder = root / STATE_DIR
        folder.mkdir(exist_ok=True)
        self.path = folder / "state.db"
        self._db = _connect(self.path)
        if server is not None:
            key = server_key(server)
            keys = [server_key(s) for s in servers] or [key]
            if _owns_primary(folder, _meta(self._db, "server"), key, keys):
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('server', ?)", (key,))
            else:
                client_id = _meta(self._db, "client_id") or uuid.uuid4().hex
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('client_id', ?)", (client_id,))
                self._db.close()
                self.path = _keyed(folder, key)
                self._db = _connect(self.path)
                for name, value in (("server", key), ("client_id", client_id)):
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (name, value))
        self._depth = 0
        #: Row writes of the open transaction, per table: path -> row (``None``: delete).
        #: Written with one ``executemany`` per table at commit instead of one
        #: ``execute`` per call: an initial sync of 10,000 files made 30,000 calls on
        #: the reactor thread, each giving up the GIL and waiting to get it back.
        self._pending: dict[str, dict[str, tuple[object, ...] | None]] = {
            table: {} for table in _ROW_TABLES
        }
        self.before_commit: list[Callable[[], None]] = []
        self.meta: dict[str, str] = dict(self._db.execute("SELECT key, value FROM meta"))
        self.base: dict[str, Version] = {
            path: Version(hash_, size, mtime)
            for path, hash_, size, mtime in self._db.execute("SELECT * FROM base")
        }
        self.cache: dict[str, CacheEntry] = {
            path: CacheEntry(hash_, Stat(size, mtime_ns, inode))
            for path, hash_, size, mtime_ns, inode in self._db.execute("SELECT * FROM local_cache")
        }
        self.remote: dict[str, Version] = {
            path: Version(hash_, size, mtime, origin)
            for path, hash_, size, mtime, origin in self._db.execute("SELECT * FROM remote")
        }
        if "client_id" not in self.meta:
            self.set_meta("client_id", uuid.uuid4().hex)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def batch(self, keep_on_error: bool = False) -> Iterator[None]:
        """Group writes into one transaction (nestable).

        ``keep_on_error`` commits even when the block raises: for a long pass whose
        writes record facts that already happened (a file was written), since the
        dictionaries were updated at once and must not disagree with the database."""
        if self._depth == 0:
            self._db.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._end(commit=keep_on_error)
            raise
        self._depth -= 1
        if self._depth == 0:
            self._end(commit=True)

    def checkpoint(self) -> None:
        """Commit what the outermost open batch wrote so far and carry on in a new
        transaction (a crash in a long pass then loses only the last stretch)."""
        if self._depth == 1:
            self._end(commit=True)
            self._db.execute("BEGIN")

    def _end(self, commit: bool) -> None:
        """End the open transaction; before a commit, run ``before_commit`` (which makes
        the files the new rows describe durable, so a row never outlives its file)."""
        if commit:
            for hook in self.before_commit:
                hook()
            self._flush()
        else:
            self._discard()
        self._db.execute("COMMIT" if commit else "ROLLBACK")

    def _write(self, table: str, path: str, row: tuple[object, ...] | None) -> None:
        """Record ``path``'s row in ``table`` (``None``: delete it): at commit inside a
        batch, at once outside one."""
        self._pending[table][path] = row
        if self._depth == 0:
            self._flush()

    def _flush(self) -> None:
        for table, rows in self._pending.items():
            if not rows:
                continue
            gone = [(path,) for path, row in rows.items() if row is None]
            kept = [(path, *row) for path, row in rows.items() if row is not None]
            if gone:
                self._db.executemany(f"DELETE FROM {table} WHERE path = ?", gone)
            if kept:
                marks = ", ".join("?" * len(kept[0]))
                self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", kept)
            rows.clear()

    def _discard(self, table: str | None = None) -> None:
        for name, rows in self._pending.items():
            if table is None or name == table:
                rows.clear()

    # -- meta -------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self.meta["client_id"]

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.meta.pop(key, None)
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.meta[key] = value
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def cursor(self) -> tuple[str, int] | None:
        """``(index_id, seq)`` of the last server change folded into ``remote``."""
        if "index_id" not in self.meta or "cursor" not in self.meta:
            return None
        return self.meta["index_id"], int(self.meta["cursor"])

    def set_cursor(self, index_id: str, seq: int) -> None:
        with self.batch():
            self.set_meta("index_id", index_id)
            self.set_meta("cursor", str(seq))

    # -- merge base -------------------------------------------------------------------

    def set_base(self, path: str, version: Version | None) -> None:
        if version is None:
            if self.base.pop(path, None) is not None:
                self._write("base", path, None)
            return
        self.base[path] = Version(version.hash, version.size, version.mtime)
        self._write("base", path, (version.hash, version.size, version.mtime))

    def clear_base(self) -> None:
        """Forget every merge base (a fresh merge follows)."""
        self.base = {}
        self._discard("base")
        self._db.execute("DELETE FROM base")

    # -- local hash cache -------------------------------------------------------------

    def cached_hash(self, path: str, stat: Stat) -> str | None:
        entry = self.cache.get(path)
        return entry.hash if entry is not None and entry.stat == stat else None

    def set_cache(self, path: str, hash_: str | None, stat: Stat | None = None) -> None:
        if hash_ is None or stat is None:
            if self.cache.pop(path, None) is not None:
                self._write("local_cache", path, None)
            return
        self.cache[path] = CacheEntry(hash_, stat)
        self._write("local_cache", path, (hash_, stat.size, stat.mtime_ns, stat.inode))

    # -- server listing ---------------------------------------------------------------

    def set_remote(self, path: str, version: Version | None) -> None:
        if version is None:
            if self.remote.pop(path, None) is not None:
                self._write("remote", path, None)
            return
        self.remote[path] = version
        self._write("remote", path, (version.hash, version.size, version.mtime, version.origin))

    def set_remote_seen(self, path: str, version: Version | None) -> None:
        """Record what one look at the server found for ``path`` outside the journal (a
        metadata lookup, a 412's current state). Absence seen that way is no tombstone:
        the base is dropped too, so it can never turn into a local delete."""
        with self.batch():
            self.set_remote(path, version)
            if version is None:
                self.set_base(path, None)

    def replace_remote(self, listing: Iterable[tuple[str, Version]]) -> None:
        """Swap in a complete server listing."""
        with self.batch():
            self._discard("remote")
            self._db.execute("DELETE FROM remote")
            self.remote = {}
            for path, version in listing:
                self.set_remote(path, version)
