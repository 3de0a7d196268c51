"""Connections to upstreams: endpoints (TCP or TLS), the keep-alive pool, dial errors.

Dial failures are wrapped in :class:`DialError` at the endpoint, so the retry logic can
tell "no connection was ever made" (always safe to retry) from failures after the request
may have reached the upstream. The pool tells a per-attempt hook when a connection (new
or reused) is handed out: that is when the request is written, so a response-header
timer can start there rather than include the dial.

Proxied requests go through :mod:`.lean` (HTTP/1.1) or :mod:`.h2client` (HTTP/2, imported
by a config that asks for it); twisted.web's ``Agent`` and its pool (:mod:`.agent`) only
by active health checks.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import ssl
from twisted.internet.defer import succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from caddytw.handlers.reverse_proxy.config import TLSConfig, TransportConfig
from caddytw.handlers.reverse_proxy.lean import LeanClient

if TYPE_CHECKING:
    from twisted.web.client import Agent

    from caddytw.handlers.reverse_proxy.agent import UpstreamPool
    from caddytw.handlers.reverse_proxy.h2client import H2Client


class DialError(Exception):
    """Connecting to the upstream failed; the request never left."""

    def __init__(self, address: str, reason: Failure) -> None:
        super().__init__(f"dialing {address}: {reason.getErrorMessage()}")
        self.reason = reason


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedTLS:
    """TLS with SNI but no certificate verification (``insecure_skip_verify``)."""

    def __init__(self, server_name: str, alpn: tuple[bytes, ...] = ()) -> None:
        self.server_name = server_name
        options = ssl.CertificateOptions(verify=False, acceptableProtocols=list(alpn) or None)
        self.context = options.getContext()

    def clientConnectionForTLS(self, tls_protocol: Any) -> Any:
        from OpenSSL import SSL

        connection = SSL.Connection(self.context, None)
        connection.set_app_data(tls_protocol)
        if self.server_name:
            connection.set_tlsext_host_name(self.server_name.encode("idna"))
        connection.set_connect_state()
        return connection


def tls_creator(tls: TLSConfig, host: str, alpn: tuple[bytes, ...] = ()) -> Any:
    """The client TLS settings for one upstream host (offering ``alpn`` protocols)."""
    server_name = tls.server_name or host
    if tls.insecure_skip_verify:
        return _UnverifiedTLS(server_name, alpn)
    trust: Any = None
    if tls.root_ca_pem_files:
        certificates = []
        for path in tls.root_ca_pem_files:
            with open(path, "rb") as pem:
                certificates.append(ssl.Certificate.loadPEM(pem.read()))
        trust = ssl.trustRootFromCertificates(certificates)
    return ssl.optionsForClientTLS(
        server_name, trustRoot=trust, acceptableProtocols=list(alpn) or None
    )


def tcp_endpoint(reactor: Any, host: str, port: int, timeout: float) -> IStreamClientEndpoint:
    """An endpoint for ``host:port``; IP literals skip the resolver (and its thread)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return HostnameEndpoint(reactor, host, port, timeout=timeout)
    if ip.version == 6:
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)


def _tune_socket(protocol: Any, probe_interval: float) -> None:
    """TCP_NODELAY (as Go sets on every connection: a request head and its body are
    separate writes, which Nagle's algorithm would hold back for a delayed ACK) and
    keep-alive probes every ``probe_interval``."""
    transport = getattr(protocol, "transport", None)
    while transport is not None and not hasattr(transport, "getHandle"):
        transport = getattr(transport, "transport", None)  # under TLS
    if transport is None:
        return
    try:
        sock = transport.getHandle()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if probe_interval <= 0:
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(probe_interval)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(probe_interval)))
    except (OSError, AttributeError):
        pass


@implementer(IStreamClientEndpoint)
class DialEndpoint:
    """Wraps an endpoint: connect failures become :class:`DialError`, and the pool calls
    :attr:`on_connection` when a connection is handed to this attempt."""

    def __init__(
        self,
        inner: IStreamClientEndpoint,
        address: str,
        probe_interval: float,
        on_connection: Callable[[Any], None] | None = None,
    ) -> None:
        self.inner = inner
        self.address = address
        self.probe_interval = probe_interval
        self.on_connection = on_connection

    def connect(self, factory: Any) -> Any:
        def connected(protocol: Any) -> Any:
            _tune_socket(protocol, self.probe_interval)
            return protocol

        def failed(reason: Failure) -> Failure:
            if reason.check(DialError):
                return reason
            return Failure(DialError(self.address, reason))

        factory.noisy = False  # one "Starting factory" log line per upstream connection
        return self.inner.connect(factory).addCallbacks(connected, failed)


class UpstreamConnector:
    """Everything one handler needs to reach its upstreams: endpoints, clients, agents."""

    def __init__(self, config: TransportConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        #: The keep-alive pool of :meth:`agent`, made on its first call.
        self.pool: UpstreamPool | None = None
        self.h2c: H2Client | None = None
        self.scheme = b"https" if config.tls is not None else b"http"
        # Proxied requests go through the lean client, over TCP or TLS alike (its dials
        # are this connector's endpoints), so the response head limit holds for both;
        # Agent remains for active health checks.
        self.lean = LeanClient(self, reactor)
        #: ``versions: ["h2c", ...]`` (or ``["2"]`` over TLS): HTTP/2 streams instead.
        if config.h2c or config.h2:
            self.h2c_client()

    def endpoint(
        self,
        host: str,
        port: int,
        on_connection: Callable[[Any], None] | None = None,
        *,
        alpn: tuple[bytes, ...] = (),
    ) -> DialEndpoint:
        """How to reach ``host:port`` (TLS when configured, offering ``alpn``)."""
        if port == 0:  # a unix socket: ``host`` is its path (see ``parse_dial``)
            unix = UNIXClientEndpoint(self.reactor, host, timeout=self.config.dial_timeout)
            return DialEndpoint(unix, f"unix/{host}", 0.0, on_connection)
        inner = tcp_endpoint(self.reactor, host, port, self.config.dial_timeout)
        if self.config.tls is not None:
            inner = wrapClientTLS(tls_creator(self.config.tls, host, alpn), inner)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return DialEndpoint(inner, address, self.config.keepalive.probe_interval, on_connection)

    def agent(self, on_connection: Callable[[Any], None]) -> Agent:
        """An Agent for one attempt (cheap: the pool is shared)."""
        from twisted.web.client import Agent

        from caddytw.handlers.reverse_proxy.agent import AttemptEndpoints, UpstreamPool

        if self.pool is None:
            keepalive = self.config.keepalive
            self.pool = UpstreamPool(self.reactor, persistent=keepalive.enabled)
            self.pool.maxPersistentPerHost = max(1, keepalive.max_idle_conns_per_host)
            self.pool.cachedConnectionTimeout = keepalive.idle_timeout or 120.0  # type: ignore[assignment]
        return Agent.usingEndpointFactory(
            self.reactor, AttemptEndpoints(self, on_connection), pool=self.pool
        )

    def url(self, host: str, port: int, target: bytes) -> bytes:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not target.startswith(b"/"):
            target = b"/" + target
        return self.scheme + b"://" + authority.encode("idna") + target

    def h2c_client(self) -> H2Client:
        """The HTTP/2 client: made at once for a transport that asks for HTTP/2, or on
        first use for ``unix+h2c`` upstreams."""
        if self.h2c is None:
            from caddytw.handlers.reverse_proxy.h2client import H2Client

            self.h2c = H2Client(self, self.reactor)
        return self.h2c

    def close(self) -> Any:
        self.lean.close()
        if self.h2c is not None:
            self.h2c.close()
        if self.pool is None:
            return succeed(None)
        return self.pool.closeCachedConnections()
