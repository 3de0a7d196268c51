"""One configured server as a twisted.web site, assembled here and nowhere else.

What serves a server's connections, all of it decided in :class:`CaddySite`'s
constructor (and nothing replaced later):

- ``protocol``: the connection protocol, :func:`caddytw.wire.h1.fast_channel_protocol`
  (HTTP/1.1, switching to HTTP/2 on ALPN ``h2`` or an h2c preface:
  :mod:`caddytw.wire.negotiate`); TLS listeners wrap the same site
  (:mod:`caddytw.server.listeners`), HTTP/3 listeners feed it their streams;
- ``resource``: :class:`ServerRoot` (the server's routes), behind the ACME HTTP-01
  gate (:class:`caddytw.tls.challenges.HTTP01Gate`) on a server without TLS, as Caddy
  answers challenges before any route;
- ``requestFactory``: :class:`caddytw.http.request.CaddyRequest`; once HTTP/3 listens
  beside the server (:meth:`CaddySite.announce_h3`), :class:`AltSvcRequests`, which
  adds Caddy's ``Alt-Svc`` header to HTTP/1.1 and HTTP/2 responses.

:class:`CaddySite` is twisted.web's ``HTTPFactory`` with the ``Site`` members a request
or an embedding program uses (``resource``, ``requestFactory``, ``getResourceFor``,
sessions, ALPN's ``acceptableProtocols``), not a ``twisted.web.server.Site``: that
module brings twisted.spread, twisted.cred, twisted.web's templates and xml.sax along
(1.4 MB resident in every server process), and serving needs none of them. Sessions,
the one feature that does need it, import it when a resource first asks for one.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.web import http
from twisted.web.resource import getChildForRequest
from zope.interface import implementer

from caddytw.admin import metrics
from caddytw.config.model import ServerConfig
from caddytw.http.accesslog import AccessLogger
from caddytw.http.body import DEFAULT_LIMIT
from caddytw.http.dispatch import dispatch
from caddytw.http.request import NOT_DONE_YET, CaddyRequest
from caddytw.http.routing import LeafResource, RouteList
from caddytw.tls.challenges import ChallengeRegistry, HTTP01Gate
from caddytw.wire.channel import Channel
from caddytw.wire.h1 import FastHTTPChannel, fast_channel_protocol

DEFAULT_IDLE_TIMEOUT = 300.0
ALT_SVC_MAX_AGE = 2592000  # 30 days, quic-go's (and so Caddy's) value


class ServerRoot(LeafResource):
    """The root of a server's resource tree: every request goes through its routes, and
    whatever escapes a handler becomes an HTTP answer, never a traceback."""

    def __init__(self, routes: RouteList) -> None:
        self.routes = routes

    def render(self, request: CaddyRequest) -> Any:
        metrics.request_started(request)
        dispatch(request, self.routes)
        return NOT_DONE_YET


class RunningServer:
    """What requests need from their server while they run (``request.site.caddy_server``)."""

    def __init__(self, config: ServerConfig, routes: RouteList, errors: RouteList | None) -> None:
        self.config = config
        self.name = config.name
        self.routes = routes
        self.error_routes = errors
        self.trusted_proxies = list(config.trusted_proxies)
        self.access_logger = AccessLogger(config.logs) if config.logs is not None else None


@implementer(IProtocolNegotiationFactory)
class CaddySite(http.HTTPFactory):
    """A site with Caddy's request class, channel limits and access log.

    ``challenges``: answer pending ACME HTTP-01 challenges before the routes (given for
    a server without TLS by :func:`caddytw.server.build.build_app`).
    """

    displayTracebacks = False
    requestFactory: Any = CaddyRequest
    #: twisted.web's switch for parsing form bodies into ``request.args`` (on, as there).
    _parsePOSTFormSubmission = True
    #: twisted.web's sessions, made on the first ``request.getSession()``.
    _session_site: Any = None

    def __init__(
        self,
        running: RunningServer,
        reactor: Any = None,
        challenges: ChallengeRegistry | None = None,
    ) -> None:
        kwargs = {"reactor": reactor} if reactor is not None else {}
        root: LeafResource = ServerRoot(running.routes)
        if challenges is not None:
            root = HTTP01Gate(challenges, root)
        super().__init__(**kwargs)
        #: The root of the resource tree (twisted.web ``Site.resource``).
        self.resource = root
        self.caddy_server = running
        self.timeOut = running.config.idle_timeout or DEFAULT_IDLE_TIMEOUT
        self.protocol = fast_channel_protocol  # type: ignore[assignment]
        self.connections: set[Any] = set()
        #: UDP ports HTTP/3 serves this server on, announced in ``Alt-Svc``.
        self.h3_ports: list[int] = []
        if running.access_logger is not None:
            running.access_logger.call_later = self.reactor.callLater

    def announce_h3(self, port: int) -> None:
        """HTTP/3 listens on ``port`` beside this server: from now on its HTTP/1.1 and
        HTTP/2 responses say so (``Alt-Svc``), as Caddy's do. Until then requests are
        built with no wrapper at all (the common, plain-HTTP case pays nothing)."""
        if port not in self.h3_ports:
            self.h3_ports.append(port)
        if not isinstance(self.requestFactory, AltSvcRequests):
            self.requestFactory = AltSvcRequests(CaddyRequest, self.h3_ports)

    def buildProtocol(self, addr: Any) -> Any:
        protocol: Any = super().buildProtocol(addr)
        protocol.requestFactory = self.requestFactory
        protocol.site = self
        self._configure(protocol)
        self.connections.add(protocol)
        return protocol

    def _configure(self, protocol: Any) -> None:
        protocol.totalHeadersSize = self.caddy_server.config.max_header_bytes
        protocol.read_header_timeout = self.caddy_server.config.read_header_timeout
        protocol.read_timeout = self.caddy_server.config.read_timeout
        protocol.allow_h2c = "h2c" in self.caddy_server.config.protocols
        protocol.max_body_bytes = self.caddy_server.config.max_request_body or DEFAULT_LIMIT
        protocol.on_close = self.forget  # the channel calls it: the site holding it now

    def getResourceFor(self, request: Any) -> Any:
        """The resource for ``request`` found by twisted.web's traversal from the root
        (``Site.getResourceFor``; requests served here go to the root directly)."""
        request.site = self
        request.sitepath = list(request.prepath)
        return getChildForRequest(self.resource, request)

    def acceptableProtocols(self) -> list[bytes]:
        """The ALPN protocols, as twisted.web's ``Site`` offers them."""
        return [b"h2", b"http/1.1"] if http.H2_ENABLED else [b"http/1.1"]

    def makeSession(self) -> Any:
        """A new twisted.web session (``request.getSession``), kept by a twisted.web
        ``Site`` made for the purpose the first time, so that twisted.web.server is only
        imported by a server whose resources use sessions."""
        return self._sessions().makeSession()

    def getSession(self, uid: bytes) -> Any:
        """The twisted.web session ``uid``; ``KeyError`` when there is none."""
        return self._sessions().getSession(uid)

    def _sessions(self) -> Any:
        if self._session_site is None:
            from twisted.web.server import Site

            self._session_site = Site(self.resource, reactor=self.reactor)
        return self._session_site

    def forget(self, protocol: FastHTTPChannel) -> None:
        """A connection closed: no longer drained or re-pointed by a reload."""
        self.connections.discard(protocol)

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


def alt_svc_value(port: int, max_age: int = ALT_SVC_MAX_AGE) -> bytes:
    return b'h3=":%d"; ma=%d' % (port, max_age)


class AltSvcRequests:
    """Builds requests as ``inner`` does and adds ``Alt-Svc`` to those that did not come
    over HTTP/3, before any handler runs (so a ``headers`` handler can still change it),
    as Caddy does."""

    def __init__(self, inner: Any, ports: list[int]) -> None:
        self.inner = inner
        self.ports = ports  # the site's list: ports added later are announced too

    def __call__(self, channel: Channel, queued: bool = False) -> Any:
        request = self.inner(channel, queued=queued)
        if self.ports and channel.protocol_name != "h3":
            request.responseHeaders.setRawHeaders(b"alt-svc", [self.value_for(request)])
        return request

    def value_for(self, request: Any) -> bytes:
        """Announce the port the request came in on when h3 runs there (Caddy's h3
        listener shares the TLS listener's port), else the first h3 port."""
        arrived = getattr(request.getHost(), "port", None)
        port = arrived if arrived in self.ports else self.ports[0]
        return alt_svc_value(port)
