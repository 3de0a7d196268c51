"""The ``reverse_proxy`` handler plugin (imports its module only when a config uses it)."""

from caddytw.handlers.registry import LazyHandlerFactory

reverse_proxy = LazyHandlerFactory("reverse_proxy", "caddytw.handlers.reverse_proxy.handler")
copy_response = LazyHandlerFactory("copy_response", "caddytw.handlers.reverse_proxy.copy_response")
copy_response_headers = LazyHandlerFactory(
    "copy_response_headers", "caddytw.handlers.reverse_proxy.copy_response_headers"
)
