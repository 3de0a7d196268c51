"""HTTP/3 for caddytw: aioquic's sans-IO QUIC and HTTP/3 driven by the Twisted reactor.

- :func:`listen_h3` binds a UDP port serving a twisted.web ``Site`` (the same resource
  tree as HTTP/1.1 and HTTP/2); :class:`H3Port` stops it politely.
- :func:`start_h3` is the one call :mod:`caddytw.server.listeners` makes per TLS
  listener (the site then announces it: ``CaddySite.announce_h3``).

Modules: ``protocol`` (datagrams, routing by connection ID), ``connection`` (one QUIC
connection and its timer), ``stream`` (one request, the request's channel), ``sni``
(server name from the first INITIAL), ``certs`` (certificate per server name),
``listener``, ``integration``. Each stream is its request's
:class:`caddytw.wire.channel.Channel`.
"""

from caddytw.wire.h3.certs import CertificateProvider, static_provider
from caddytw.wire.h3.integration import start_h3
from caddytw.wire.h3.listener import H3Port, listen_h3

__all__ = [
    "CertificateProvider",
    "H3Port",
    "listen_h3",
    "start_h3",
    "static_provider",
]
