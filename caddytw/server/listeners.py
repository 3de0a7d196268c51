"""Opening, re-pointing and closing one listener of a server.

A TCP address is served plain (HTTP/1.1, h2c) or with TLS (h2 + h1, certificates by
SNI) as the automatic-HTTPS plan says (:class:`caddytw.tls.runtime.TLSRuntime`); a TLS
listener gets HTTP/3 on the same port number over UDP beside it
(:func:`caddytw.wire.h3.integration.start_h3`). Which protocol each connection then
speaks is decided by :mod:`caddytw.wire.negotiate`. :class:`caddytw.server.reload.LiveConfig`
is the only caller.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from caddytw.config.listen import ListenAddress
from caddytw.http.site import CaddySite
from caddytw.server.workers.supervisor import serves_udp
from caddytw.tls.runtime import TLSRuntime

if TYPE_CHECKING:  # aioquic is imported only by a process that serves HTTP/3
    from caddytw.wire.h3.listener import H3Port

log = Logger()


@dataclass
class Listener:
    """One open TCP port, the site it currently feeds, and its HTTP/3 port if any."""

    address: ListenAddress
    site: CaddySite
    port: Any
    number: int  # the bound port number (known even after the port is closed)
    h3: H3Port | None = None


def open_listener(
    reactor: Any, address: ListenAddress, site: CaddySite, tls: TLSRuntime
) -> Listener | None:
    """Bind ``address`` for ``site``, or take over its inherited socket (``fd/N``,
    ``fdgram/N``); None for UDP addresses (HTTP/3 comes with TLS)."""
    if address.network == "fdgram":
        return _open_fdgram(reactor, address, site, tls)
    if address.network.startswith("udp"):
        return None
    server = site.caddy_server.config
    backlog = server.listen_backlog or kernel_backlog()
    factory = _factory(site, tls)
    if address.network == "fd":
        fd = address.descriptor()
        port = reactor.adoptStreamPort(fd, socket_family(fd), factory)
    else:
        port = reactor.listenTCP(
            address.port, factory, backlog=backlog, interface=address.host or ""
        )
    log.info("server {name} listening on {address}", name=server.name, address=port.getHost())
    listener = Listener(address, site, port, port.getHost().port)
    # HTTP/3 beside a TLS listener; not beside an inherited one, whose UDP socket comes
    # the same way (``fdgram/N``), as in Caddy.
    if tls.is_tls(server.name) and address.network != "fd":
        listener.h3 = _open_h3(reactor, listener, tls)
    return listener


def _open_fdgram(
    reactor: Any, address: ListenAddress, site: CaddySite, tls: TLSRuntime
) -> Listener | None:
    """HTTP/3 on an inherited datagram socket (Caddy's ``bind fdgram/N`` with
    ``protocols h3``); the listener's port is the QUIC port itself."""
    from caddytw.wire.h3.integration import start_h3

    adopted = AdoptedUDP(reactor, address.descriptor())
    port = start_h3(adopted, site, "", 0, tls.certificate_provider)
    if port is None:
        return None
    log.info(
        "server {name} serving HTTP/3 on {address}",
        name=site.caddy_server.name,
        address=port.getHost(),
    )
    return Listener(address, site, port, port.getHost().port)


def point(listener: Listener, site: CaddySite, tls: TLSRuntime) -> None:
    """Send an open listener's new connections (TCP and HTTP/3) to ``site`` (a reload
    kept its address)."""
    listener.site = site
    if listener.address.network == "fdgram":  # the port is the QUIC port itself
        listener.port.protocol.site = site
        site.announce_h3(listener.number)
        return
    listener.port.factory = _factory(site, tls)
    if listener.h3 is not None:
        listener.h3.protocol.site = site
        site.announce_h3(listener.h3.getHost().port)
    elif tls.is_tls(site.caddy_server.name) and not serves_udp():
        _announce_elsewhere(listener)


def stop_listening(listener: Listener) -> Deferred[Any]:
    """Stop accepting on the TCP port (and on its HTTP/3 port, politely)."""
    if listener.h3 is not None:
        listener.h3.stopListening()
        listener.h3 = None
    return maybeDeferred(listener.port.stopListening)


def _factory(site: CaddySite, tls: TLSRuntime) -> Any:
    server = site.caddy_server.config
    if tls.is_tls(server.name):
        return tls.tls_factory(server, site)
    return site


def _open_h3(reactor: Any, listener: Listener, tls: TLSRuntime) -> H3Port | None:
    """HTTP/3 on the same port number over UDP, as Caddy does for TLS servers.

    With ``--workers``, only worker 0 opens it (QUIC cannot be spread over processes
    by SO_REUSEPORT); the others still announce it.
    """
    if not serves_udp():
        _announce_elsewhere(listener)
        return None
    if "h3" not in listener.site.caddy_server.config.protocols:
        return None  # without importing aioquic (caddytw.wire.h3 is its only user)
    from caddytw.wire.h3.integration import start_h3

    host = listener.address.host
    return start_h3(reactor, listener.site, host, listener.number, tls.certificate_provider)


def _announce_elsewhere(listener: Listener) -> None:
    """Another process serves HTTP/3 on this port number: announce it all the same."""
    if "h3" in listener.site.caddy_server.config.protocols:
        listener.site.announce_h3(listener.number)


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
