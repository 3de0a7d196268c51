"""The ``file_sync`` handler (the sync server), imported only when a config uses it."""

from caddytw.handlers.registry import LazyHandlerFactory

file_sync = LazyHandlerFactory("file_sync", "caddytw.handlers.file_sync")
