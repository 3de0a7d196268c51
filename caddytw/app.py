"""The running server: one twisted ``Service`` that owns every configured listener.

``build_app`` does all the work that can fail (parsing, compiling routes, building
handlers) before anything listens, so a bad config never disturbs a running one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.logger import Logger

from caddytw.config.errors import ConfigError, ErrorCollector
from caddytw.config.listen import ListenAddress
from caddytw.config.model import Config, ServerConfig, parse_config
from caddytw.http.build import BuildContext
from caddytw.http.routing import EmptyResponse, ErrorStatusResponse, build_routes
from caddytw.http.site import CaddySite, ServerRuntime
from caddytw.tls.automation import plan_automatic_https
from caddytw.tls.listeners import listen
from caddytw.tls.runtime import TLSRuntime

log = Logger()


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
    config_dir: str = ".",
) -> BuiltServer:
    context = BuildContext(
        reactor=reactor,
        server_name=server.name,
        listen=tuple(a.display for a in server.listen),
        shared=shared if shared is not None else {},
        config_dir=config_dir,
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
    data: Any, reactor: Any = None, config_dir: str = "."
) -> tuple[Config, list[BuiltServer]]:
    """Parse and build everything; raise :class:`ConfigErrors` listing every problem."""
    reactor = default_reactor(reactor)
    collector = ErrorCollector()
    config = parse_config(data, collector)
    config = plan_automatic_https(config, collector).config  # TLS and redirects, as Caddy
    shared: dict[str, Any] = {}
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
        built.append(build_server(server, reactor, collector, shared, config_dir))
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


class CaddyService(MultiService):
    """Listens on every address of every server and runs their background services."""

    def __init__(self, data: Any, reactor: Any = None, config_dir: str = ".") -> None:
        super().__init__()
        self.reactor = default_reactor(reactor)
        self.config, self.servers = build_app(data, self.reactor, config_dir)
        self.tls = TLSRuntime(self.config, self.reactor)
        self.tls.setServiceParent(self)
        for built in self.servers:
            for service in built.context.services:
                service.setServiceParent(self)

    def startService(self) -> None:
        for built in self.servers:
            for address in built.config.listen:
                if address.network.startswith("udp"):
                    continue
                port = self._listen(address, built.site, built.config)
                built.ports.append(port)
                if self.tls.is_tls(built.config.name):
                    self._listen_h3(built, address, port)
        super().startService()

    def _listen_h3(self, built: BuiltServer, address: ListenAddress, tcp_port: Any) -> None:
        """HTTP/3 on the same port number over UDP, as Caddy does for TLS servers."""
        from caddytw.h3.integration import start_h3

        h3_port = start_h3(
            self.reactor,
            built,
            address.host,
            tcp_port.getHost().port,
            self.tls.certificate_provider,
        )
        if h3_port is not None:
            built.ports.append(h3_port)

    def _listen(self, address: ListenAddress, site: CaddySite, server: ServerConfig) -> Any:
        port = listen(self.reactor, address, site, server, self.tls)
        log.info(
            "server {name} listening on {address}",
            name=site.caddy_server.name,
            address=port.getHost(),
        )
        return port

    def stopService(self) -> Any:
        stops = [maybeDeferred(port.stopListening) for b in self.servers for port in b.ports]
        for built in self.servers:
            built.ports.clear()
        return DeferredList([maybeDeferred(super().stopService), *stops])

    def bound_ports(self, server: str | None = None) -> list[int]:
        """The actual ports (useful with port 0 in tests and embedding)."""
        return [
            port.getHost().port
            for built in self.servers
            if server is None or built.config.name == server
            for port in built.ports
        ]


def config_dir_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))
