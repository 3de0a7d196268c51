"""What handler factories get to build with: the reactor, the server, shared services.

The handler factories themselves are passed in (``factories``, found by
:mod:`caddytw.handlers.registry` from the plugins), so this layer never imports the
handlers it builds: :mod:`caddytw.server.build` wires the two together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import IService

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.config.unsupported import handler_message
from caddytw.http.interfaces import IHandlerFactory
from caddytw.http.routing import LeafResource, RouteList, build_routes


class NamedHandler(LeafResource):
    """Records which handler a request reached last (the one that answered, for the
    ``handler`` label of the request metrics), then renders it."""

    def __init__(self, name: str, inner: Any) -> None:
        self.name = name
        self.inner = inner

    def render(self, request: Any) -> Any:
        request.caddy_handler = self.name
        return self.inner.render(request)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)


@dataclass
class BuildContext:
    """Build-time services for handler factories.

    ``services`` collects background work (health checkers, folder watchers) that starts
    and stops with the server; ``shared`` is state that survives a config reload, keyed
    by whatever identifies it (an upstream address, a sync root); ``factories`` maps a
    JSON ``"handler"`` name to the plugin that builds it.
    """

    reactor: Any
    factories: Mapping[str, IHandlerFactory] = field(default_factory=dict)
    server_name: str = ""
    listen: tuple[str, ...] = ()
    services: list[IService] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)

    def build_handler(self, data: Any, path: str, next: Any) -> Any:
        """Build one ``{"handler": ...}`` object through its plugin factory."""
        reader = ObjectReader(data, path, what="object (handler)")
        name = reader.text("handler")
        if not name:
            raise ConfigError(reader.at("handler"), "missing handler name")
        factory = self.factories.get(name)
        if factory is None:
            raise ConfigError(reader.at("handler"), handler_message(name))
        return NamedHandler(name, factory.build(reader, self, next))

    def build_routes(self, data: Any, path: str, next: Any) -> RouteList:
        """Compile a nested route list (used by ``subroute`` and error routes)."""
        return build_routes(data, path, self, next)
