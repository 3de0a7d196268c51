"""The built-in handlers, registered as plugins so third parties can add their own.

Each entry imports its module only when a config uses the handler.
"""

from caddytw.handlers.registry import LazyHandlerFactory

static_response = LazyHandlerFactory("static_response", "caddytw.handlers.static_response")
subroute = LazyHandlerFactory("subroute", "caddytw.handlers.subroute")
error = LazyHandlerFactory("error", "caddytw.handlers.error")
vars_handler = LazyHandlerFactory("vars", "caddytw.handlers.vars")
metrics_handler = LazyHandlerFactory("metrics", "caddytw.handlers.metrics")
