"""Cleartext HTTP/2 with prior knowledge (``h2c``) on the same port as HTTP/1.1.

Twisted only switches to HTTP/2 after TLS ALPN. Here the first bytes of a cleartext
connection are compared with the HTTP/2 connection preface: while they are a prefix of
it we wait for more; a full match swaps in ``caddytw.http.h2.CaddyH2Connection`` as
``_GenericHTTPChannelProtocol.dataReceived`` does after ALPN (:func:`switch_to_h2`, also
used for ALPN h2 by ``caddytw.tls.listeners``); anything else is an
HTTP/1.1 request and goes to the usual channel. This uses private Twisted names
(``_GenericHTTPChannelProtocol`` and its ``_channel``, ``_negotiatedProtocol``,
``_networkProducer``): setup.cfg pins Twisted's range, and tests/tls cover it.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import _GenericHTTPChannelProtocol

from caddytw.http.channel import CaddyHTTPChannel
from caddytw.http.h2 import CaddyH2Connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class H2CChannelProtocol(_GenericHTTPChannelProtocol):  # type: ignore[misc]
    """HTTP/1.1 channel that becomes HTTP/2 when the client starts with the preface."""

    _sniffed = b""
    _negotiatedProtocol: bytes | None = None  # type: ignore[assignment]

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is not None:
            self._channel.dataReceived(data)
            return
        buffered = self._sniffed + data
        if len(buffered) < len(PREFACE) and PREFACE.startswith(buffered):
            self._sniffed = buffered
            return
        self._sniffed = b""
        if buffered.startswith(PREFACE):
            switch_to_h2(self)
            self._negotiatedProtocol = b"h2c"
        else:
            self._negotiatedProtocol = b"http/1.1"
        self._channel.dataReceived(buffered)


def switch_to_h2(protocol: _GenericHTTPChannelProtocol) -> None:
    """Replace ``protocol``'s HTTP/1.1 channel with a :class:`CaddyH2Connection` on the
    same transport (twisted's own ALPN switch, with our connection class)."""
    wrapper: Any = protocol
    old: Any = wrapper._channel
    producer = old._networkProducer
    producer.unregisterProducer()
    old.setTimeout(None)
    transport = old.transport
    channel: Any = CaddyH2Connection(getattr(wrapper._factory, "reactor", None))
    channel.requestFactory = wrapper._requestFactory
    channel.site = wrapper._site
    channel.factory = wrapper._factory
    channel.timeOut = wrapper._timeOut
    channel.callLater = wrapper._callLater
    wrapper._channel = channel
    channel.makeConnection(transport)
    producer.registerProducer(channel, True)


def h2c_channel_protocol() -> H2CChannelProtocol:
    """The ``Site.protocol`` for servers whose ``protocols`` include ``h2c``."""
    return H2CChannelProtocol(CaddyHTTPChannel())
