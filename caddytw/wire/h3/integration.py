"""How a server gets its HTTP/3 listener: one call per bound TLS listener.

:class:`caddytw.server.service.CaddyService` calls :func:`start_h3` after a TLS listener
is bound, with that listener's actual port: Caddy serves HTTP/3 on the
same port number over UDP when the server's ``protocols`` include ``h3`` (the default).
"""

from __future__ import annotations

from typing import Any

from caddytw.wire.h3.altsvc import advertise_h3
from caddytw.wire.h3.certs import CertificateProvider
from caddytw.wire.h3.listener import DEFAULT_IDLE_TIMEOUT, H3Port, listen_h3


def wants_h3(protocols: tuple[str, ...] | list[str]) -> bool:
    return "h3" in protocols


def start_h3(
    reactor: Any,
    built: Any,
    host: str,
    port: int,
    certificate_provider: CertificateProvider,
    *,
    retry: bool = False,
) -> H3Port | None:
    """Listen for HTTP/3 beside a TLS listener of ``built`` (a ``server.service.BuiltServer``)
    and announce it with Alt-Svc on the server's HTTP/1 and HTTP/2 responses.

    Returns the port (append it to ``built.ports`` so ``stopService`` stops it), or None
    when the server's protocols leave h3 out.
    """
    if not wants_h3(built.config.protocols):
        return None
    idle = built.config.idle_timeout or DEFAULT_IDLE_TIMEOUT
    h3_port = listen_h3(
        reactor, host, port, built.site, certificate_provider, idle_timeout=idle, retry=retry
    )
    advertise_h3(built.site, [h3_port.getHost().port])
    return h3_port
