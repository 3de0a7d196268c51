"""Starting HTTP/3 beside one TLS listener: the one call :mod:`caddytw.server.listeners`
makes for it.

Caddy serves HTTP/3 over UDP on the same port number as a TLS listener when the
server's ``protocols`` include ``h3`` (the default). The UDP port serves the same
:class:`caddytw.http.site.CaddySite` as the TCP one, whose ``announce_h3`` then adds
``Alt-Svc`` to its HTTP/1.1 and HTTP/2 responses. Whoever calls :func:`start_h3` keeps
the returned port and stops it with the TCP listener
(:class:`caddytw.server.listeners.Listener`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from caddytw.wire.h3.certs import CertificateProvider
from caddytw.wire.h3.listener import DEFAULT_IDLE_TIMEOUT, H3Port, listen_h3

if TYPE_CHECKING:
    from caddytw.http.site import CaddySite


def wants_h3(protocols: tuple[str, ...] | list[str]) -> bool:
    return "h3" in protocols


def start_h3(
    reactor: Any,
    site: CaddySite,
    host: str,
    port: int,
    certificate_provider: CertificateProvider,
    *,
    retry: bool = False,
) -> H3Port | None:
    """Listen for HTTP/3 on UDP ``host:port`` for ``site`` and announce it on the site's
    other responses; None when the server's protocols leave h3 out."""
    config = site.caddy_server.config
    if not wants_h3(config.protocols):
        return None
    idle = config.idle_timeout or DEFAULT_IDLE_TIMEOUT
    h3_port = listen_h3(
        reactor, host, port, site, certificate_provider, idle_timeout=idle, retry=retry
    )
    site.announce_h3(h3_port.getHost().port)
    return h3_port
