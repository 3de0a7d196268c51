"""The HTTP/1.1 connection: Caddy's header limits and header timeout on twisted.web's channel."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol


class CaddyHTTPChannel(HTTPChannel):
    """HTTPChannel answering 431 for oversized headers and enforcing ``read_header_timeout``.

    ``totalHeadersSize`` is set from ``max_header_bytes``; the header timer runs from the
    first line of a request until its headers are complete, so a client that trickles
    headers (slowloris) is dropped while an idle keep-alive connection is governed by
    ``idle_timeout`` (``timeOut``) instead.
    """

    read_header_timeout: float | None = None
    _header_timer: Any = None

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._cancel_header_timer()
            self._transport().write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"Connection: close\r\nContent-Length: 0\r\n\r\n"
            )
            self.loseConnection()
            return
        if self._header_timer is None and self.read_header_timeout:
            self._header_timer = self.callLater(self.read_header_timeout, self._header_timed_out)
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        self._cancel_header_timer()
        super().allHeadersReceived()

    def _header_timed_out(self) -> None:
        self._header_timer = None
        self._transport().loseConnection()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None and self._header_timer.active():
            self._header_timer.cancel()
        self._header_timer = None

    def _transport(self) -> Any:
        return self.transport

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_header_timer()
        super().connectionLost(reason)


def channel_protocol() -> _GenericHTTPChannelProtocol:
    """A protocol that starts as our HTTP/1.1 channel and can switch to HTTP/2 by ALPN."""
    return _GenericHTTPChannelProtocol(CaddyHTTPChannel())
