"""Building a config into servers, before anything listens.

Everything that can fail (parsing, automatic-HTTPS planning, compiling routes, building
handlers) happens here, so a bad config is refused whole and a running server (or a
reload) never sees half of it. Automatic HTTPS is planned here once; the plan is kept
in :class:`BuiltApp` and the TLS side (:class:`caddytw.tls.runtime.TLSRuntime`) runs
from it. :mod:`caddytw.server.reload` puts what is built here on the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caddytw.config.errors import ConfigError, ErrorCollector
from caddytw.config.model import Config, ServerConfig, parse_config
from caddytw.handlers.registry import handler_factories
from caddytw.http.build import BuildContext
from caddytw.http.routing import EmptyResponse, ErrorStatusResponse, build_routes
from caddytw.http.site import CaddySite, RunningServer
from caddytw.tls.automation import HTTPSPlan, plan_automatic_https
from caddytw.tls.challenges import ChallengeRegistry


@dataclass
class BuiltServer:
    """A server ready to listen: its site and what must run beside it (the services
    its handlers started, in ``context.services``)."""

    config: ServerConfig
    site: CaddySite
    context: BuildContext


@dataclass
class BuiltApp:
    """A whole config, built: the planned config, the plan itself and the servers."""

    config: Config  # with automatic HTTPS applied (``plan.config``)
    plan: HTTPSPlan
    servers: list[BuiltServer]


def build_server(
    server: ServerConfig,
    reactor: Any,
    collector: ErrorCollector,
    shared: dict[str, Any] | None = None,
    challenges: ChallengeRegistry | None = None,
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
    site = CaddySite(RunningServer(server, routes, errors), reactor, challenges)
    return BuiltServer(server, site, context)


def default_reactor(reactor: Any) -> Any:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor


def build_app(
    data: Any,
    reactor: Any = None,
    shared: dict[str, Any] | None = None,
    challenges: ChallengeRegistry | None = None,
) -> BuiltApp:
    """Parse and build everything; raise :class:`ConfigErrors` listing every problem.

    ``shared`` is the state handlers keep across reloads (see ``BuildContext.shared``).
    ``challenges``: the registry the ACME issuer publishes into; the sites of servers
    without TLS answer its HTTP-01 challenges (None: no gate, as for a library site).
    """
    reactor = default_reactor(reactor)
    collector = ErrorCollector()
    plan = plan_automatic_https(parse_config(data, collector), collector)
    config = plan.config  # TLS and redirects, as Caddy
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
        gate = None if plan.is_tls(server.name) else challenges
        built.append(build_server(server, reactor, collector, shared, gate))
    collector.raise_if_any()
    return BuiltApp(config, plan, built)


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
