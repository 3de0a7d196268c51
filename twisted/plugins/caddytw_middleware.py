"""Middleware-style and small handlers: headers, rewrite, request_body, encode,
authentication, map. Each module is imported only when a config uses it."""

from caddytw.handlers.registry import LazyHandlerFactory

headers = LazyHandlerFactory("headers", "caddytw.handlers.headers")
rewrite = LazyHandlerFactory("rewrite", "caddytw.handlers.rewrite.handler")
request_body = LazyHandlerFactory("request_body", "caddytw.handlers.request_body")
encode = LazyHandlerFactory("encode", "caddytw.handlers.encode.handler")
authentication = LazyHandlerFactory("authentication", "caddytw.handlers.authentication.handler")
map_handler = LazyHandlerFactory("map", "caddytw.handlers.map")
