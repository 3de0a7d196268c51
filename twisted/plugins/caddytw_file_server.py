"""The ``file_server`` handler as a plugin (its module is imported only when used)."""

from caddytw.handlers.registry import LazyHandlerFactory

file_server = LazyHandlerFactory("file_server", "caddytw.handlers.file_server")
