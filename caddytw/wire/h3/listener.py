"""Start and stop an HTTP/3 listener: a UDP port serving a twisted.web Site over QUIC."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from caddytw.wire.h3.certs import CertificateProvider, QuicConfigurations
from caddytw.wire.h3.protocol import H3ServerProtocol

DEFAULT_IDLE_TIMEOUT = 30.0


class H3Port:
    """The listening UDP port plus its protocol; ``stopListening`` closes connections
    politely (CONNECTION_CLOSE) before the socket goes away."""

    def __init__(self, port: Any, protocol: H3ServerProtocol) -> None:
        self.port = port
        self.protocol = protocol

    def getHost(self) -> Any:
        return self.port.getHost()

    def stats(self) -> dict[str, int]:
        return self.protocol.stats()

    def stopListening(self) -> Deferred[None]:
        self.protocol.close_connections()
        return maybeDeferred(self.port.stopListening)


def listen_h3(
    reactor: Any,
    host: str,
    port: int,
    site: Any,
    certificate_provider: CertificateProvider,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    retry: bool = False,
) -> H3Port:
    """Listen for HTTP/3 on UDP ``host:port`` and serve ``site``'s resource tree.

    ``certificate_provider(server_name)`` returns ``(chain, key)`` (cryptography
    objects, leaf first) for the SNI of each new connection, or None to refuse it.
    ``retry`` makes new clients prove their address with a retry token first.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    configurations = QuicConfigurations(certificate_provider, idle_timeout=idle_timeout)
    protocol = H3ServerProtocol(site, configurations, reactor=reactor, retry=retry)
    udp = reactor.listenUDP(port, protocol, interface=host, maxPacketSize=65535)
    return H3Port(udp, protocol)
