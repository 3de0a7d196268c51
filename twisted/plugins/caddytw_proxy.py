"""The ``reverse_proxy`` handler plugin (imports its module only when a config uses it)."""

from caddytw.handlers.registry import LazyHandlerFactory

reverse_proxy = LazyHandlerFactory("reverse_proxy", "caddytw.handlers.reverse_proxy.handler")
