"""Cleartext HTTP/2 with prior knowledge (``h2c``) on the same port as HTTP/1.1.

Twisted only switches to HTTP/2 after TLS ALPN. Here the first bytes of a cleartext
connection are compared with the HTTP/2 connection preface: while they are a prefix of
it we wait for more; a full match swaps in twisted's ``H2Connection`` exactly as
``_GenericHTTPChannelProtocol.dataReceived`` does after ALPN; anything else is an
HTTP/1.1 request and goes to the usual channel. This uses private Twisted names
(``_GenericHTTPChannelProtocol`` and its ``_channel``, ``_negotiatedProtocol``,
``_networkProducer``): setup.cfg pins Twisted's range, and tests/tls cover it.
"""

from __future__ import annotations

from typing import Any

from twisted.web._http2 import H2Connection
from twisted.web.http import _GenericHTTPChannelProtocol

from caddytw.http.channel import CaddyHTTPChannel

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
            self._switch_to_h2()
            self._negotiatedProtocol = b"h2c"
        else:
            self._negotiatedProtocol = b"http/1.1"
        self._channel.dataReceived(buffered)

    def _switch_to_h2(self) -> None:
        old: Any = self._channel
        producer = old._networkProducer
        producer.unregisterProducer()
        old.setTimeout(None)
        transport = old.transport
        channel: Any = H2Connection()
        channel.requestFactory = self._requestFactory
        channel.site = self._site
        channel.factory = self._factory
        channel.timeOut = self._timeOut
        channel.callLater = self._callLater
        self._channel = channel
        channel.makeConnection(transport)
        producer.registerProducer(channel, True)


def h2c_channel_protocol() -> H2CChannelProtocol:
    """The ``Site.protocol`` for servers whose ``protocols`` include ``h2c``."""
    return H2CChannelProtocol(CaddyHTTPChannel())
