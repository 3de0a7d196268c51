"""The ``file_sync_ui`` handler (the file manager page of a ``file_sync`` folder),
imported only when a config uses it."""

from caddytw.handlers.registry import LazyHandlerFactory

file_sync_ui = LazyHandlerFactory("file_sync_ui", "caddytw.handlers.file_sync_ui")
