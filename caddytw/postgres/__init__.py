"""PostgreSQL for several nodes: the psycopg 3 pool every database user shares
(:mod:`.database`) and the ``LISTEN`` loop (:mod:`.listener`).

Its users are the ``file_sync`` index (``caddytw.sync.pgindex``) and the ``postgres``
certificate storage (``caddytw.tls.pgstore``); a single node with SQLite and files
never imports it.
"""

from caddytw.postgres.database import (
    Database,
    DatabaseUnavailable,
    check_connection_string,
    is_unavailable,
    release_database,
    shared_database,
)
from caddytw.postgres.listener import ChangeListener

__all__ = [
    "ChangeListener",
    "Database",
    "DatabaseUnavailable",
    "check_connection_string",
    "is_unavailable",
    "release_database",
    "shared_database",
]
