"""One configured server as a twisted.web ``Site``: its routes, errors, logs and limits."""

from __future__ import annotations

from typing import Any

from twisted.web import server

from caddytw.config.model import ServerConfig
from caddytw.http.accesslog import AccessLogger
from caddytw.http.channel import channel_protocol
from caddytw.http.request import CaddyRequest, render_and_answer
from caddytw.http.routing import LeafResource, RouteList

DEFAULT_IDLE_TIMEOUT = 300.0


class ServerRoot(LeafResource):
    """The root of a server's resource tree: every request goes through its routes, and
    whatever escapes a handler becomes an HTTP answer, never a traceback."""

    def __init__(self, routes: RouteList) -> None:
        self.routes = routes

    def render(self, request: CaddyRequest) -> Any:
        render_and_answer(request, self.routes)
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
        self.protocol = channel_protocol  # type: ignore[assignment]

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        channel = getattr(protocol, "_channel", protocol)
        channel.totalHeadersSize = self.caddy_server.config.max_header_bytes
        channel.read_header_timeout = self.caddy_server.config.read_header_timeout
        return protocol

    def log(self, request: Any) -> None:
        logger = self.caddy_server.access_logger
        if logger is not None:
            logger.log(request)
