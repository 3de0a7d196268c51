"""What handler factories get to build with: the reactor, the server, shared services.

The handler factories themselves are passed in (``factories``, found by
:mod:`caddytw.handlers.registry` from the plugins), so this layer never imports the
handlers it builds: :mod:`caddytw.server.build` wires the two together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.config.unsupported import handler_message
from caddytw.http.request import Answer, CaddyRequest, Handler
from caddytw.http.routing import LeafResource, RouteList, build_routes

__all__ = ["BuildContext", "Handler", "HandlerFactory", "NamedHandler"]


class HandlerFactory(Protocol):
    """A handler plugin as building sees it (:class:`caddytw.interfaces.IHandlerFactory`
    says what a provider must do): ``build`` validates ``config`` and returns the
    handler, given the ``next`` one in its chain."""

    def build(self, config: ObjectReader, context: BuildContext, next: Handler) -> Handler: ...


class NamedHandler(LeafResource):
    """Records which handler a request reached last (the one that answered, for the
    ``handler`` label of the request metrics), then renders it."""

    def __init__(self, name: str, inner: Handler) -> None:
        self.name = name
        self.inner = inner

    def render(self, request: CaddyRequest) -> Answer:
        request.caddy_handler = self.name
        return self.inner.render(request)

    def __getattr__(self, attribute: str) -> object:
        return getattr(self.inner, attribute)


@dataclass
class BuildContext:
    """Build-time services for handler factories.

    ``reactor`` is the one every handler schedules and connects with (a full reactor;
    typed by the part all of them use). ``services`` collects background work (health
    checkers, folder watchers) that starts and stops with the server; ``shared`` is
    state that survives a config reload, keyed by whatever identifies it (an upstream
    address, a sync root), each owner checking the type of what it finds;
    ``factories`` maps a JSON ``"handler"`` name to the plugin that builds it.
    """

    reactor: IReactorTime
    factories: Mapping[str, HandlerFactory] = field(default_factory=dict)
    server_name: str = ""
    listen: tuple[str, ...] = ()
    services: list[IService] = field(default_factory=list)
    shared: dict[str, object] = field(default_factory=dict)

    def build_handler(self, data: object, path: str, next: Handler) -> Handler:
        """Build one ``{"handler": ...}`` object through its plugin factory."""
        reader = ObjectReader(data, path, what="object (handler)")
        name = reader.text("handler")
        if not name:
            raise ConfigError(reader.at("handler"), "missing handler name")
        factory = self.factories.get(name)
        if factory is None:
            raise ConfigError(reader.at("handler"), handler_message(name))
        return NamedHandler(name, factory.build(reader, self, next))

    def build_routes(self, data: object, path: str, next: Handler) -> RouteList:
        """Compile a nested route list (used by ``subroute`` and error routes)."""
        return build_routes(data, path, self, next)
