"""Which storage module a config's top-level ``storage`` names.

``file_system`` (the default, :class:`~caddytw.tls.store.FileStorage`) or ``postgres``
(:class:`~caddytw.tls.pgstore.PostgresStorage`, imported only when named, so a single
node never loads the database driver). Kept out of :mod:`caddytw.tls.store` because
the PostgreSQL module builds on that one.
"""

from __future__ import annotations

from caddytw.tls.config import StorageConfig, default_storage_root
from caddytw.tls.store import FileStorage, Storage


def open_storage(config: StorageConfig) -> Storage:
    """The storage ``config`` describes."""
    if config.module == "postgres":
        from caddytw.tls.pgstore import PostgresStorage

        return PostgresStorage(config.connection_string)
    return FileStorage(config.root or default_storage_root())
