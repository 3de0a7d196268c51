"""PostgreSQL for caddytw's shared state (several nodes on one database): the driver
behind the ``postgres`` modules of ``file_sync``'s ``index`` (and, later, ``storage``).

The driver is psycopg 3 (the ``postgres`` extra: ``pip install "caddytw[postgres]"``),
used through its *blocking* API from threads, with ``psycopg_pool.ConnectionPool``:

- twistd picks the reactor (epoll by default, ``-r`` to change it); psycopg's async API
  needs an asyncio loop, so bridging it would force the asyncio reactor on every
  deployment that uses PostgreSQL. Threads work under any reactor.
- The code that uses the database already runs on its own thread (the sync index
  thread: check-then-commit sequences interleave file-system calls with queries), so
  a blocking connection there is the natural fit; the reactor never waits on it.
- The pool is thread-safe, checks a connection before handing it out
  (:meth:`ConnectionPool.check_connection`), so after a database restart the broken
  connections are dropped and new ones made: a node reconnects by itself. While the
  database is unreachable, callers get :class:`DatabaseUnavailable` after
  ``connect_timeout`` seconds instead of hanging.

One pool per connection string per process (:func:`shared_database`), counted, closed
with its last user.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from caddytw.config.errors import ConfigError

#: Seconds a caller waits for a connection before :class:`DatabaseUnavailable`.
CONNECT_TIMEOUT = 10.0
#: Connections per pool (one per node is busy with the index thread, one listens).
POOL_MAX = 8


class DatabaseUnavailable(Exception):
    """The database cannot be reached (down, restarting, wrong address or password)."""


def check_connection_string(value: object, where: str) -> str:
    """``value`` if it is a usable libpq connection string (``postgres://...`` or
    ``key=value`` pairs); a :class:`ConfigError` at ``where`` otherwise, also when the
    driver is not installed (the single-node default never needs it)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, "expected a PostgreSQL connection string like postgres://...")
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ConfigError(
            where,
            'PostgreSQL support needs psycopg: pip install "caddytw[postgres]"',
        ) from None
    import psycopg

    try:
        params = conninfo_to_dict(value)
    except psycopg.Error as error:
        raise ConfigError(where, f"not a valid connection string: {error}".strip()) from None
    port = str(params.get("port", "5432"))
    if not all(part.isdigit() for part in port.split(",")):
        raise ConfigError(where, f"not a valid connection string: port {port!r} is not a number")
    return value


def describe(connection_string: str) -> str:
    """The connection string without its password (for logs and errors)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(connection_string)
    host = params.get("host", "localhost")
    return f"postgres://{params.get('user', '')}@{host}:{params.get('port', 5432)}/" + str(
        params.get("dbname", "")
    )


class Database:
    """A connection pool on one database; every method blocks (call from threads)."""

    def __init__(self, connection_string: str, max_size: int = POOL_MAX) -> None:
        from psycopg_pool import ConnectionPool

        self.connection_string = connection_string
        self.name = describe(connection_string)
        self.pool = ConnectionPool(
            connection_string,
            min_size=1,
            max_size=max_size,
            open=False,
            check=ConnectionPool.check_connection,
            timeout=CONNECT_TIMEOUT,
            reconnect_timeout=0,  # keep trying in the background forever
            # Callers say BEGIN themselves (with the isolation level they need).
            kwargs={
                "connect_timeout": int(CONNECT_TIMEOUT),
                "application_name": "caddytw",
                "autocommit": True,
            },
            name=f"caddytw {self.name}",
        )
        self._opened = False
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            if not self._opened:
                self.pool.open(wait=False)
                self._opened = True

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.pool.close(timeout=5)
                self._opened = False

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection (committed when the block ends normally, rolled back
        otherwise); :class:`DatabaseUnavailable` when none can be had in time."""
        import psycopg
        from psycopg_pool import PoolTimeout

        self.open()
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as error:
            raise DatabaseUnavailable(f"{self.name} is unreachable: {error}") from None
        except psycopg.OperationalError as error:
            raise DatabaseUnavailable(f"{self.name}: {error}".strip()) from None

    def getconn(self) -> Any:
        """A connection held until :meth:`putconn` (for transactions that span calls)."""
        from psycopg_pool import PoolTimeout

        self.open()
        try:
            return self.pool.getconn()
        except PoolTimeout as error:
            raise DatabaseUnavailable(f"{self.name} is unreachable: {error}") from None

    def putconn(self, conn: Any) -> None:
        self.pool.putconn(conn)

    def connect_direct(self, **kwargs: Any) -> Any:
        """A connection of its own outside the pool (for ``LISTEN``, which must keep
        its session)."""
        import psycopg

        try:
            return psycopg.connect(
                self.connection_string,
                connect_timeout=int(CONNECT_TIMEOUT),
                application_name="caddytw",
                **kwargs,
            )
        except psycopg.OperationalError as error:
            raise DatabaseUnavailable(f"{self.name}: {error}".strip()) from None


_shared: dict[str, tuple[Database, int]] = {}
_shared_lock = threading.Lock()


def shared_database(connection_string: str) -> Database:
    """The process's pool for ``connection_string`` (counted: release it with
    :func:`release_database`)."""
    with _shared_lock:
        database, users = _shared.get(connection_string, (None, 0))
        if database is None:
            database = Database(connection_string)
        _shared[connection_string] = (database, users + 1)
        return database


def release_database(database: Database) -> None:
    with _shared_lock:
        found, users = _shared.get(database.connection_string, (None, 0))
        if found is not database:
            database.close()
            return
        if users > 1:
            _shared[database.connection_string] = (database, users - 1)
            return
        del _shared[database.connection_string]
    database.close()


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means "the database went away" (worth a 503 and a retry)."""
    if isinstance(error, DatabaseUnavailable):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
