"""Opening one listener of a server: plain (HTTP/1.1, h2c) or TLS (h2 + h1).

This is what :class:`caddytw.server.service.CaddyService` calls for each TCP address. Plain
listeners answer pending ACME HTTP-01 challenges before the server's routes; TLS
listeners pick certificates by SNI; the connection protocol
(``caddytw.wire.h1``) picks HTTP/1.1 or HTTP/2 by ALPN or the h2c preface.
"""

from __future__ import annotations

from typing import Any

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
    """Bind ``address`` for ``site``; returns the listening port."""
    interface = address.host or ""
    backlog = server.listen_backlog or kernel_backlog()
    secure = tls is not None and tls.is_tls(server.name)
    if secure:
        assert tls is not None
        factory = tls.tls_factory(server, site)
        return reactor.listenTCP(address.port, factory, backlog=backlog, interface=interface)
    if tls is not None:
        install_http01_gate(site, tls.challenges)
    return reactor.listenTCP(address.port, site, backlog=backlog, interface=interface)


def kernel_backlog() -> int:
    """The kernel's largest accept queue (``net.core.somaxconn``), the backlog Go asks
    for and so Caddy's; Twisted's default of 50 drops connections under a burst."""
    try:
        with open("/proc/sys/net/core/somaxconn") as limit:
            return max(int(limit.read().strip()), 128)
    except (OSError, ValueError):
        return 4096
