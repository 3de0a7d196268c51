"""Opening one listener of a server: plain (HTTP/1.1, h2c) or TLS (h2 + h1).

This is what :class:`caddytw.server.service.CaddyService` calls for each TCP address. Plain
listeners answer pending ACME HTTP-01 challenges before the server's routes; TLS
listeners pick certificates by SNI; the connection protocol
(``caddytw.wire.h1``) picks HTTP/1.1 or HTTP/2 by ALPN or the h2c preface.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.protocols.tls import TLSMemoryBIOFactory

from caddytw.config.listen import ListenAddress
from caddytw.config.model import ServerConfig
from caddytw.tls.challenges import install_http01_gate
from caddytw.tls.runtime import TLSRuntime


def listen(
    reactor: Any,
    address: ListenAddress,
    site: Any,
    server: ServerConfig,
    tls: TLSRuntime | None,
) -> Any:
    """Bind ``address`` for ``site`` (or take over its inherited socket); returns the
    listening port."""
    interface = address.host or ""
    backlog = server.listen_backlog or kernel_backlog()
    secure = tls is not None and tls.is_tls(server.name)
    factory: Any = site
    if secure:
        assert tls is not None
        creator = tls.connection_creator(server)
        factory = TLSMemoryBIOFactory(creator, False, site)
    elif tls is not None:
        install_http01_gate(site, tls.challenges)
    if address.network == "fd":
        fd = address.descriptor()
        return reactor.adoptStreamPort(fd, socket_family(fd), factory)
    return reactor.listenTCP(address.port, factory, backlog=backlog, interface=interface)


def socket_family(fd: int) -> int:
    """The address family of an open socket descriptor, made non-blocking for the
    reactor (a parent such as systemd hands it over blocking). The descriptor stays
    open: the reactor adopts a duplicate, and a reload may adopt it again."""
    os.set_blocking(fd, False)
    probe = socket.socket(fileno=fd)
    try:
        return int(probe.family)
    finally:
        probe.detach()


class AdoptedUDP:
    """A reactor whose ``listenUDP`` takes over an inherited datagram socket
    (``fdgram/N``) instead of binding, for the HTTP/3 listener."""

    def __init__(self, reactor: Any, fd: int) -> None:
        self._reactor = reactor
        self._fd = fd

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:
        family = socket_family(self._fd)
        return self._reactor.adoptDatagramPort(self._fd, family, protocol, maxPacketSize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def kernel_backlog() -> int:
    """The kernel's largest accept queue (``net.core.somaxconn``), the backlog Go asks
    for and so Caddy's; Twisted's default of 50 drops connections under a burst."""
    try:
        with open("/proc/sys/net/core/somaxconn") as limit:
            return max(int(limit.read().strip()), 128)
    except (OSError, ValueError):
        return 4096
