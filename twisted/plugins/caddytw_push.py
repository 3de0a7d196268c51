"""The ``push`` handler (HTTP/2 server push), imported only when a config uses it."""

from caddytw.handlers.registry import LazyHandlerFactory

push = LazyHandlerFactory("push", "caddytw.handlers.push")
