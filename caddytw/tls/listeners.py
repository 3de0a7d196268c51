"""Opening one listener of a server: plain HTTP/1.1, plain with h2c, or TLS (h2 + h1).

This is what :class:`caddytw.app.CaddyService` calls for each TCP address. Plain
listeners answer pending ACME HTTP-01 challenges before the server's routes; TLS
listeners pick certificates by SNI and protocols by ALPN.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.http import _GenericHTTPChannelProtocol

from caddytw.config.listen import ListenAddress
from caddytw.config.model import ServerConfig
from caddytw.http.channel import CaddyHTTPChannel
from caddytw.http.site import uses_fast_channel
from caddytw.tls.challenges import install_http01_gate
from caddytw.tls.context import ACME_TLS_ALPN
from caddytw.tls.h2c import h2c_channel_protocol, switch_to_h2
from caddytw.tls.runtime import TLSRuntime


class TLSChannelProtocol(_GenericHTTPChannelProtocol):  # type: ignore[misc]
    """twisted's ALPN switch, closing ``acme-tls/1`` connections instead of asserting and
    switching to our ``CaddyH2Connection`` on ``h2``.

    A TLS-ALPN-01 validation connection only needs the handshake; anything it sends
    afterwards is not HTTP.
    """

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is None:
            transport: Any = self._channel.transport
            negotiated = getattr(transport, "negotiatedProtocol", None)
            if negotiated == ACME_TLS_ALPN:
                transport.loseConnection()
                return
            if negotiated == b"h2":
                switch_to_h2(self)
                self._negotiatedProtocol = negotiated
        super().dataReceived(data)


def tls_channel_protocol() -> TLSChannelProtocol:
    return TLSChannelProtocol(CaddyHTTPChannel())


def listen(
    reactor: Any,
    address: ListenAddress,
    site: Any,
    server: ServerConfig,
    tls: TLSRuntime | None,
) -> Any:
    """Bind ``address`` for ``site``; returns the listening port."""
    interface = address.host or ""
    secure = tls is not None and tls.is_tls(server.name)
    use_channel_protocol(site, server, secure)
    if secure:
        assert tls is not None
        creator = tls.connection_creator(server)
        factory = TLSMemoryBIOFactory(creator, False, site)
        return reactor.listenTCP(address.port, factory, interface=interface)
    if tls is not None:
        install_http01_gate(site, tls.challenges)
    return reactor.listenTCP(address.port, site, interface=interface)


def use_channel_protocol(site: Any, server: ServerConfig, secure: bool) -> None:
    """Give ``site`` the connection protocol its listener needs.

    The lean HTTP/1.1 channel (the default, see ``caddytw.http.site``) switches to
    HTTP/2 on ALPN h2 or an h2c preface and closes acme-tls/1 connections itself;
    twisted's channel needs the wrappers above for those.
    """
    if uses_fast_channel():
        return
    if secure:
        site.protocol = tls_channel_protocol
    elif "h2c" in server.protocols:
        site.protocol = h2c_channel_protocol
