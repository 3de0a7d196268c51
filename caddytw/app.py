"""The running server: one twisted ``Service`` that owns every configured listener.

``build_app`` does all the work that can fail (parsing, compiling routes, building
handlers) before anything listens, so a bad config never disturbs a running one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from caddytw.config.errors import ConfigError, ErrorCollector
from caddytw.config.listen import ListenAddress
from caddytw.config.model import Config, ServerConfig, parse_config
from caddytw.http.build import BuildContext
from caddytw.http.routing import EmptyResponse, ErrorStatusResponse, build_routes
from caddytw.http.site import CaddySite, ServerRuntime
from caddytw.tls.automation import plan_automatic_https
from caddytw.tls.challenges import install_http01_gate
from caddytw.tls.listeners import listen, use_channel_protocol
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
    data: Any,
    reactor: Any = None,
    config_dir: str = ".",
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
    """The twistd-facing service: a :class:`Runtime` (config, servers, listeners), the TLS
    runtime and the admin API, with graceful shutdown (``apps.http.grace_period``)."""

    def __init__(self, data: Any, reactor: Any = None, config_dir: str = ".") -> None:
        from caddytw.admin.service import AdminService
        from caddytw.runtime import Runtime

        super().__init__()
        self.reactor = default_reactor(reactor)
        self._h3: dict[int, Any] = {}
        self.runtime = Runtime(
            self.reactor, self, self._listen, self._swap, config_dir, on_close=self._closed
        )
        self.runtime.load(data)
        self.tls = TLSRuntime(self.config, self.reactor)
        self.tls.setServiceParent(self)
        self._tls_key = _tls_key(self.config)
        self.runtime.prepare.append(self._prepare_tls)
        self.admin = AdminService(self.runtime, self.reactor)
        self.admin.setServiceParent(self)

    @property
    def config(self) -> Config:
        assert self.runtime.config is not None
        return self.runtime.config

    @property
    def servers(self) -> list[BuiltServer]:
        return self.runtime.servers

    def load(self, data: Any) -> Any:
        """Switch to a new config without dropping connections (see ``Runtime.load``)."""
        return self.runtime.load(data)

    def startService(self) -> None:
        self.runtime.start()
        super().startService()

    def _prepare_tls(self, config: Config) -> None:
        """A reload that changes TLS settings gets a new TLS runtime (certificates are
        loaded from storage again; unchanged settings keep the running one)."""
        key = _tls_key(config)
        if key == self._tls_key:
            return
        old, self.tls = self.tls, TLSRuntime(config, self.reactor)
        self._tls_key = key
        old.disownServiceParent()
        self.tls.setServiceParent(self)

    def _listen(self, address: ListenAddress, site: CaddySite) -> Any:
        """Open one listener for ``site`` (None for address kinds served elsewhere)."""
        if address.network.startswith("udp"):
            return None
        server = site.caddy_server.config
        port = listen(self.reactor, address, site, server, self.tls)
        log.info(
            "server {name} listening on {address}",
            name=site.caddy_server.name,
            address=port.getHost(),
        )
        if self.tls.is_tls(server.name):
            self._listen_h3(site, address, port)
        return port

    def _listen_h3(self, site: CaddySite, address: ListenAddress, tcp_port: Any) -> None:
        """HTTP/3 on the same port number over UDP, as Caddy does for TLS servers.

        With ``--workers``, only worker 0 opens it (QUIC cannot be spread over
        processes by SO_REUSEPORT); the others still advertise it.
        """
        from caddytw.h3.integration import start_h3, wants_h3
        from caddytw.workers import serves_udp

        if not serves_udp():
            if wants_h3(site.caddy_server.config.protocols):
                from caddytw.h3.altsvc import advertise_h3

                advertise_h3(site, [tcp_port.getHost().port])
            return
        built = BuiltServer(site.caddy_server.config, site, BuildContext(self.reactor))
        h3_port = start_h3(
            self.reactor,
            built,
            address.host,
            tcp_port.getHost().port,
            self.tls.certificate_provider,
        )
        if h3_port is not None:
            self._h3[id(tcp_port)] = h3_port

    def _swap(self, listener: Any, site: CaddySite) -> None:
        """Point an open listener at a new site (a reload kept its address)."""
        port = listener.port
        server = site.caddy_server.config
        secure = self.tls.is_tls(server.name)
        use_channel_protocol(site, server, secure)
        if secure:
            creator = self.tls.connection_creator(server)
            port.factory = TLSMemoryBIOFactory(creator, False, site)
        else:
            install_http01_gate(site, self.tls.challenges)
            port.factory = site
        h3_port = self._h3.get(id(port))
        if h3_port is not None:
            from caddytw.h3.altsvc import advertise_h3

            h3_port.protocol.site = site
            advertise_h3(site, [h3_port.getHost().port])

    def _closed(self, listener: Any) -> None:
        h3_port = self._h3.pop(id(listener.port), None)
        if h3_port is not None:
            h3_port.stopListening()

    def stopService(self) -> Any:
        stopped = self.runtime.stop()
        return stopped.addCallback(lambda _: maybeDeferred(super(CaddyService, self).stopService))

    def bound_ports(self, server: str | None = None) -> list[int]:
        """The actual ports (useful with port 0 in tests and embedding)."""
        return self.runtime.bound_ports(server)


def _tls_key(config: Config) -> Any:
    """What the TLS runtime is built from, to tell whether a reload changes it."""
    return repr(
        (
            config.tls,
            config.storage,
            config.http.http_port,
            config.http.https_port,
            [
                (s.name, s.listen, s.tls_connection_policies, s.automatic_https, s.protocols)
                for s in config.http.servers
            ],
        )
    )


def config_dir_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))
