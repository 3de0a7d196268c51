"""The ``postgres`` storage module: the TLS app's storage in one PostgreSQL table, so
several nodes share certificates, keys, ACME accounts, OCSP and pending challenges.

Configured as the community certmagic-sqlstorage module is::

    "storage": {"module": "postgres", "connection_string": "postgres://user@db/caddy"}

- **Values**: one row per key in ``caddytw_storage(key, value, modified)``; a write is an
  upsert, so a reader sees the old value or the new one.
- **Locks**: PostgreSQL session advisory locks, each on a connection of its own held
  for as long as the lock (a blocking ``pg_advisory_lock``: waiters are served in
  order). A node that dies loses its session and with it its locks: at once when its
  process exits (the kernel closes the socket), within about
  :data:`KEEPALIVE_SECONDS` when its machine or network vanishes (server-side TCP
  keepalives set on the lock's session). No lock outlives its holder, so none needs
  an expiry that a slow order could overrun.
- **Fencing**: a lock's session can also end under a holder that still runs (its
  connection dropped, an operator's ``pg_terminate_backend``); another node then gets
  the lock and orders too. Taking a lock therefore records, in
  ``caddytw_locks(name, fence, holder)``, a fence from a sequence and the backend PID
  of the lock's session; :meth:`PostgresStorage.store_fenced` (the certificate save)
  checks in its own transaction that the row still carries the holder's fence *and*
  that this session still holds the advisory lock (``pg_locks``), taking the row lock
  so that a new holder's fence bump waits for the save to commit. A save under a lost
  lock is refused (:class:`~caddytw.tls.store.LockLost`), so the node that holds the
  lock now is the one whose certificate stays.
- **Challenges**: storing or deleting a key under ``challenge_tokens/`` also sends a
  ``NOTIFY`` on :data:`CHANNEL` in the same transaction, so the other nodes load the
  pending challenges before the CA comes to check them (see
  :mod:`caddytw.tls.distributed`).
- **Acknowledgements** instead of a fixed wait: each node's listening session registers
  its backend PID in ``caddytw_listeners``; once a node's in-memory maps hold the
  pending challenges it adds ``(key, pid)`` rows to ``caddytw_challenge_acks``. The
  ordering node (:meth:`PostgresStorage.await_challenge`) waits until every *live*
  listener (its session still in ``pg_stat_activity``) has acknowledged the challenge,
  at most :data:`ACK_TIMEOUT` seconds (a node whose database session is gone cannot
  answer anyway and is not waited for; a node that is up but stuck is, that long).

Every method blocks (psycopg through :class:`caddytw.postgres.Database`'s pool): the
TLS app calls them from worker threads, never from the reactor.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from twisted.logger import Logger

from caddytw.postgres import Database, release_database, shared_database
from caddytw.tls.store import (
    CHALLENGES,
    Fence,
    LockLost,
    Storage,
    check_key,
    parse_challenges,
)

log = Logger()

TABLE = "caddytw_storage"
LOCKS = "caddytw_locks"
LISTENERS = "caddytw_listeners"
ACKS = "caddytw_challenge_acks"
#: Longest wait for the other nodes to acknowledge a challenge before the CA is told.
ACK_TIMEOUT = 10.0
#: How often the ordering node looks at the acknowledgements meanwhile.
ACK_POLL = 0.05
FENCES = "caddytw_lock_fences"
CHANNEL = "caddytw_storage_challenges"
#: First key of the storage's advisory locks ("cdts"), the second is the key's hash.
LOCK_CLASS = 0x63647473
#: Roughly how long a lock of a node that vanished without closing its socket lives.
KEEPALIVE_SECONDS = 30
_KEEPALIVE_OPTIONS = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=4"
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL,
    modified TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS {FENCES};
CREATE TABLE IF NOT EXISTS {LOCKS} (
    name TEXT COLLATE "C" PRIMARY KEY,
    fence BIGINT NOT NULL,
    holder INTEGER NOT NULL,
    taken TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {LISTENERS} (
    pid INTEGER PRIMARY KEY,
    registered TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {ACKS} (
    key TEXT COLLATE "C" NOT NULL,
    listener INTEGER NOT NULL,
    PRIMARY KEY (key, listener)
)
"""
#: Live listeners that have not acknowledged a challenge key yet.
_UNACKNOWLEDGED = f"""
SELECT count(*) FROM {LISTENERS} l
WHERE l.pid IN (SELECT pid FROM pg_stat_activity)
AND NOT EXISTS (SELECT 1 FROM {ACKS} a WHERE a.key = %s AND a.listener = l.pid)
"""
_UPSERT = (
    f"INSERT INTO {TABLE} (key, value) VALUES (%s, %s) ON CONFLICT (key) "
    "DO UPDATE SET value = EXCLUDED.value, modified = now()"
)
#: The fence row of a lock, if it still carries this fence and its holder's session
#: still holds the advisory lock (a 2-key advisory lock: classid, objid, objsubid 2).
_STILL_HELD = f"""
SELECT 1 FROM {LOCKS} l WHERE l.name = %s AND l.fence = %s AND EXISTS (
    SELECT 1 FROM pg_locks p WHERE p.pid = l.holder AND p.locktype = 'advisory'
    AND p.granted AND p.objsubid = 2 AND p.classid::bigint = %s AND p.objid::bigint = %s
) FOR UPDATE OF l
"""


def lock_id(key: str) -> int:
    """The second (32-bit, signed) key of the advisory lock for a storage lock name."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class PostgresStorage(Storage):
    """Certificates and friends in PostgreSQL (a process's pool per connection string)."""

    shared = True

    def __init__(self, connection_string: str) -> None:
        self.database: Database = shared_database(connection_string)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._waiting: set[Any] = set()
        self._closed = False
        #: The backend PID of this node's listening session (None until it listens).
        self._listener_pid: int | None = None

    def describe(self) -> str:
        return self.database.name

    def _schema(self, conn: Any) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                # Two nodes creating the table at once would collide in the catalog.
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
                    conn.execute(SCHEMA)
                self._ready = True

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        with self.database.connection() as conn:
            self._schema(conn)
            yield conn

    # -- values ----------------------------------------------------------------------

    def load(self, key: str) -> bytes | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT value FROM {TABLE} WHERE key = %s", (check_key(key),)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def store(self, key: str, value: bytes, private: bool = False) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute(_UPSERT, (check_key(key), value))
            self._announce(conn, key)

    def store_fenced(self, items: Sequence[tuple[str, bytes, bool]], fence: Fence | None) -> None:
        """All ``items`` in one transaction, which first checks that ``fence``'s lock is
        still held by the session that took it (see the module's *Fencing*)."""
        with self._conn() as conn, conn.transaction():
            if fence is not None:
                held = conn.execute(
                    _STILL_HELD,
                    (fence.key, fence.token, LOCK_CLASS, lock_id(fence.key) & 0xFFFFFFFF),
                ).fetchone()
                if held is None:
                    raise LockLost(f"lock {fence.key!r} (fence {fence.token}) is no longer held")
            for key, value, _private in items:
                conn.execute(_UPSERT, (check_key(key), value))
                self._announce(conn, key)

    def delete(self, key: str) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute(f"DELETE FROM {TABLE} WHERE key = %s", (check_key(key),))
            if key.startswith(CHALLENGES + "/"):
                conn.execute(f"DELETE FROM {ACKS} WHERE key = %s", (key,))
            self._announce(conn, key)

    def list(self, prefix: str = "") -> list[str]:
        with self._conn() as conn:
            if not prefix:
                rows = conn.execute(f"SELECT key FROM {TABLE} ORDER BY key").fetchall()
            else:
                start = check_key(prefix).rstrip("/") + "/"
                # Keys are "C"-collated: the prefix range is [start, start + U+FFFF).
                rows = conn.execute(
                    f"SELECT key FROM {TABLE} WHERE key >= %s AND key < %s ORDER BY key",
                    (start, start + "\uffff"),
                ).fetchall()
        return [row[0] for row in rows]

    def load_challenges(self) -> dict[str, dict[str, dict[str, str]]]:
        """All pending challenges in one query (every node runs this on each NOTIFY)."""
        start = CHALLENGES + "/"
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT key, value FROM {TABLE} WHERE key >= %s AND key < %s",
                (start, start + "\uffff"),
            ).fetchall()
        return parse_challenges((key, bytes(value)) for key, value in rows)

    @staticmethod
    def _announce(conn: Any, key: str) -> None:
        if key.startswith(CHALLENGES + "/"):
            conn.execute(f"NOTIFY {CHANNEL}")

    # -- locks -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[Fence]:
        import psycopg

        conn = self.database.connect_direct(autocommit=True, options=_KEEPALIVE_OPTIONS)
        with self._ready_lock:
            if self._closed:
                conn.close()
                raise RuntimeError("storage closed")
            self._waiting.add(conn)
        try:
            self._schema(conn)
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, lock_id(key)))
            with self._ready_lock:
                self._waiting.discard(conn)
            # Waits for a stale holder's fenced save in flight (it holds the row), so
            # what this holder loads next includes that save.
            row = conn.execute(
                f"INSERT INTO {LOCKS} (name, fence, holder) "
                f"VALUES (%s, nextval('{FENCES}'), pg_backend_pid()) ON CONFLICT (name) "
                "DO UPDATE SET fence = EXCLUDED.fence, holder = EXCLUDED.holder, taken = now() "
                "RETURNING fence",
                (key,),
            ).fetchone()
            yield Fence(key, int(row[0]))
            # A session that already ended took its lock with it.
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, lock_id(key)))
        finally:
            with self._ready_lock:
                self._waiting.discard(conn)
            conn.close()  # ends the session: the lock is gone even if unlock failed

    def close(self) -> None:
        """Give up waiting for locks (a node shutting down must not wait for another
        node's order) and release the pool."""
        with self._ready_lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting), set()
        for conn in waiting:
            with contextlib.suppress(Exception):
                conn.cancel()
        release_database(self.database)

    def listen(self, on_change: Any) -> Any:
        """Call ``on_change()`` (on a thread of its own) whenever a challenge is
        published or withdrawn, and after each (re)connection; returns ``stop``."""
        from caddytw.postgres import ChangeListener

        label = "tls: listening for other nodes' challenges"
        listener = ChangeListener(
            self.database, CHANNEL, on_change, label, on_connect=self._register_listener
        )
        listener.start()
        return listener.stop

    # -- acknowledgements (see the module's docstring) -------------------------------

    def _register_listener(self, conn: Any) -> None:
        """On the listening session itself: this node is one whose acknowledgement
        ordering nodes wait for, for as long as that session lives."""
        self._schema(conn)
        with conn.transaction():
            conn.execute(
                f"DELETE FROM {ACKS} WHERE listener NOT IN (SELECT pid FROM pg_stat_activity)"
            )
            conn.execute(
                f"DELETE FROM {LISTENERS} WHERE pid NOT IN (SELECT pid FROM pg_stat_activity)"
            )
            conn.execute(
                f"INSERT INTO {LISTENERS} (pid) VALUES (pg_backend_pid()) ON CONFLICT DO NOTHING"
            )
        self._listener_pid = int(conn.info.backend_pid)

    def acknowledge_challenges(self, found: dict[str, dict[str, dict[str, str]]]) -> None:
        pid = self._listener_pid
        keys = [
            self.challenge_key(kind, ident) for kind, idents in found.items() for ident in idents
        ]
        if pid is None or not keys:
            return
        with self._conn() as conn, conn.transaction():
            for key in keys:
                conn.execute(
                    f"INSERT INTO {ACKS} (key, listener) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (key, pid),
                )

    def await_challenge(self, kind: str, ident: str) -> None:
        """Until every live node acknowledged the challenge (at most :data:`ACK_TIMEOUT`
        seconds, then a warning: the CA may still reach a node that has it)."""
        key = self.challenge_key(kind, ident)
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            with self._conn() as conn:
                row = conn.execute(_UNACKNOWLEDGED, (key,)).fetchone()
            missing = int(row[0]) if row else 0
            if missing == 0:
                return
            if time.monotonic() >= deadline:
                log.warn(
                    "{n} node(s) did not acknowledge the {kind} challenge for {i} within "
                    "{t:.0f}s; asking the CA anyway",
                    n=missing,
                    kind=kind,
                    i=ident,
                    t=ACK_TIMEOUT,
                )
                return
            time.sleep(ACK_POLL)
