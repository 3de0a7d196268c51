"""Handler lookup by JSON name through Twisted's plugin system."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from twisted.plugin import IPlugin
from zope.interface import implementer

from caddytw.http.interfaces import IHandlerFactory, find_plugins

if TYPE_CHECKING:  # plugin files import this module: it must not pull the HTTP stack
    from caddytw.config.reader import ObjectReader
    from caddytw.http.build import BuildContext, Handler, HandlerFactory


@cache
def handler_factories() -> dict[str, HandlerFactory]:
    """Every ``IHandlerFactory`` plugin on ``sys.path``, by name (first one found wins)."""
    return find_plugins(IHandlerFactory)


@implementer(IPlugin, IHandlerFactory)
class LazyHandlerFactory:
    """A plugin entry that imports its handler module only when a config uses it.

    Plugin files are imported on every lookup, so they must stay cheap: the module named
    here provides ``build(config, context, next)``.
    """

    def __init__(self, name: str, module: str) -> None:
        self.name = name
        self.module = module

    def build(self, config: ObjectReader, context: BuildContext, next: Handler) -> Handler:
        import importlib

        handler: Handler = importlib.import_module(self.module).build(config, context, next)
        return handler

    def __repr__(self) -> str:
        return f"<handler {self.name} from {self.module}>"
