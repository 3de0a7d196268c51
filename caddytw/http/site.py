"""One configured server as a twisted.web ``Site``: its routes, errors, logs and limits."""

from __future__ import annotations

from typing import Any

from twisted.web import server

from caddytw import metrics
from caddytw.config.model import ServerConfig
from caddytw.http.accesslog import AccessLogger
from caddytw.http.body import DEFAULT_LIMIT
from caddytw.http.dispatch import dispatch
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource, RouteList
from caddytw.wire.h1 import fast_channel_protocol

DEFAULT_IDLE_TIMEOUT = 300.0


class ServerRoot(LeafResource):
    """The root of a server's resource tree: every request goes through its routes, and
    whatever escapes a handler becomes an HTTP answer, never a traceback."""

    def __init__(self, routes: RouteList) -> None:
        self.routes = routes

    def render(self, request: CaddyRequest) -> Any:
        metrics.request_started(request)
        dispatch(request, self.routes)
        return server.NOT_DONE_YET


class ServerRuntime:
    """What requests need from their server at run time (see ``request.site.caddy_server``)."""

    def __init__(self, config: ServerConfig, routes: RouteList, errors: RouteList | None) -> None:
        self.config = config
        self.name = config.name
        self.routes = routes
        self.error_routes = errors
        self.trusted_proxies = list(config.trusted_proxies)
        self.access_logger = AccessLogger(config.logs) if config.logs is not None else None


class CaddySite(server.Site):
    """A Site with Caddy's request class, channel limits and access log."""

    displayTracebacks = False
    requestFactory = CaddyRequest

    def __init__(self, runtime: ServerRuntime, reactor: Any = None) -> None:
        kwargs = {"reactor": reactor} if reactor is not None else {}
        super().__init__(ServerRoot(runtime.routes), **kwargs)
        self.caddy_server = runtime
        self.timeOut = runtime.config.idle_timeout or DEFAULT_IDLE_TIMEOUT
        self.protocol = fast_channel_protocol  # type: ignore[assignment]
        self.connections: set[Any] = set()
        if runtime.access_logger is not None:
            runtime.access_logger.call_later = self.reactor.callLater

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self._configure(protocol)
        self.connections.add(protocol)
        _forget_when_closed(protocol)
        return protocol

    def _configure(self, protocol: Any) -> None:
        protocol.totalHeadersSize = self.caddy_server.config.max_header_bytes
        protocol.read_header_timeout = self.caddy_server.config.read_header_timeout
        protocol.read_timeout = self.caddy_server.config.read_timeout
        protocol.allow_h2c = "h2c" in self.caddy_server.config.protocols
        protocol.max_body_bytes = self.caddy_server.config.max_request_body or DEFAULT_LIMIT

    def adopt(self, protocol: Any) -> None:
        """Take over a live connection of the site this one replaces (a reload): its next
        requests use this site's routes; a request in flight finishes on the old ones."""
        protocol.site = self
        protocol.factory = self
        self._configure(protocol)
        self.connections.add(protocol)

    def stopFactory(self) -> None:
        if self.caddy_server.access_logger is not None:
            self.caddy_server.access_logger.flush()
        super().stopFactory()

    def log(self, request: Any) -> None:
        metrics.request_finished(request)
        logger = self.caddy_server.access_logger
        if logger is not None:
            logger.log(request)


def _forget_when_closed(protocol: Any) -> None:
    """Remove a connection from its (current) site's ``connections`` when it closes,
    whatever protocol class the listener uses (plain, TLS, h2c)."""
    original = protocol.connectionLost

    def connection_lost(reason: Any) -> None:
        connections = getattr(protocol.factory, "connections", None)
        if connections is not None:
            connections.discard(protocol)
        original(reason)

    protocol.connectionLost = connection_lost
