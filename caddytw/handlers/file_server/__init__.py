"""``file_server``: static files, directory listings and precompressed sidecars, as Caddy.

The package splits the work into pure parts (``paths``, ``conditional``, ``ranges``,
``encodings``, ``content_types``, ``hide``, ``browse``) and the parts that touch the
disk or the network (``resource``, ``listing``, ``producer``).
"""

from __future__ import annotations

from caddytw.config.reader import ObjectReader
from caddytw.handlers.file_server.config import parse
from caddytw.handlers.file_server.content_types import system_types
from caddytw.handlers.file_server.resource import FileServer
from caddytw.http.build import BuildContext, Handler

__all__ = ["FileServer", "build"]


def build(config: ObjectReader, context: BuildContext, next: Handler) -> FileServer:
    """Build the handler; reads the host's MIME database now so requests never wait."""
    settings = parse(config)
    system_types()
    return FileServer(settings, next, getattr(context, "reactor", None))
