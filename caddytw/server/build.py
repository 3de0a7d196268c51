"""Building a config into servers, before anything listens.

Everything that can fail (parsing, automatic-HTTPS planning, compiling routes, building
handlers) happens here, so a bad config is refused whole and a running server (or a
reload) never sees half of it. :mod:`caddytw.server.service` and
:mod:`caddytw.server.reload` put what is built here on the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caddytw.config.errors import ConfigError, ErrorCollector
from caddytw.config.model import Config, ServerConfig, parse_config
from caddytw.handlers.registry import handler_factories
from caddytw.http.build import BuildContext
from caddytw.http.routing import EmptyResponse, ErrorStatusResponse, build_routes
from caddytw.http.site import CaddySite, ServerRuntime
from caddytw.tls.automation import plan_automatic_https


@dataclass
class BuiltServer:
    """A server ready to listen: its site and what must run beside it."""

    config: ServerConfig
    site: CaddySite
    context: BuildContext
    ports: list[Any] = field(default_factory=list)


def build_server(
    server: ServerConfig,
    reactor: Any,
    collector: ErrorCollector,
    shared: dict[str, Any] | None = None,
) -> BuiltServer:
    context = BuildContext(
        reactor=reactor,
        factories=handler_factories(),
        server_name=server.name,
        listen=tuple(a.display for a in server.listen),
        shared=shared if shared is not None else {},
    )
    routes = build_routes(
        server.routes, f"{server.path}.routes", context, EmptyResponse(), collector
    )
    errors = None
    if server.error_routes is not None:
        errors = build_routes(
            server.error_routes,
            f"{server.path}.errors.routes",
            context,
            ErrorStatusResponse(),
            collector,
        )
    runtime = ServerRuntime(server, routes, errors)
    return BuiltServer(server, CaddySite(runtime, reactor=reactor), context)


def default_reactor(reactor: Any) -> Any:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor


def build_app(
    data: Any,
    reactor: Any = None,
    shared: dict[str, Any] | None = None,
) -> tuple[Config, list[BuiltServer]]:
    """Parse and build everything; raise :class:`ConfigErrors` listing every problem.

    ``shared`` is the state handlers keep across reloads (see ``BuildContext.shared``).
    """
    reactor = default_reactor(reactor)
    collector = ErrorCollector()
    config = parse_config(data, collector)
    config = plan_automatic_https(config, collector).config  # TLS and redirects, as Caddy
    shared = shared if shared is not None else {}
    built = []
    seen: dict[tuple[str, int], str] = {}
    for server in config.http.servers:
        for index, address in enumerate(server.listen):
            key = (address.host, address.port)
            if address.port and key in seen:
                collector.add(
                    ConfigError(
                        f"{server.path}.listen[{index}]",
                        f"address {address.display} is already used by server {seen[key]!r}",
                    )
                )
            seen[key] = server.name
        built.append(build_server(server, reactor, collector, shared))
    collector.raise_if_any()
    return config, built


def validate(data: Any, reactor: Any = None) -> list[str]:
    """Every problem in a config as ``path: message`` strings (empty when valid)."""
    from caddytw.config.errors import ConfigErrors

    try:
        build_app(data, reactor)
    except ConfigErrors as errors:
        return [str(error) for error in errors]
    except ConfigError as error:
        return [str(error)]
    return []
