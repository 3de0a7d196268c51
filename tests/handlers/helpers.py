"""Shared helpers for the handler tests: route builders and in-memory serving."""

from __future__ import annotations

from typing import Any

from tests.support.memory import MemoryServer, memory_server


def chain(*handlers: dict[str, Any], **route: Any) -> dict[str, Any]:
    """One route running ``handlers`` in order."""
    return {"handle": list(handlers), **route}


def echo(body: str, **fields: Any) -> dict[str, Any]:
    return {"handler": "static_response", "body": body, **fields}


def serve(*handlers: dict[str, Any], **server: Any) -> MemoryServer:
    """A memory server whose only route runs ``handlers``."""
    return memory_server([chain(*handlers)], **server)


def serve_resource(resource: Any) -> MemoryServer:
    """A memory server whose only route is ``resource`` itself (for chains built by hand
    around a test resource, e.g. one that streams its body in several writes)."""
    server = memory_server([chain(echo("placeholder"))])
    server.site.caddy_server.routes.routes[0].chain = resource
    return server
