"""The HTTP/1.1 connection: Caddy's header limits and header timeout on twisted.web's channel."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol


class CaddyHTTPChannel(HTTPChannel):
    """HTTPChannel answering 431 for oversized headers and enforcing Caddy's read timeouts.

    ``totalHeadersSize`` is set from ``max_header_bytes``. Two timers start with the first
    line of each request: ``read_header_timeout`` until its headers are complete and
    ``read_timeout`` until its body is, so a client that trickles headers or a body
    (slowloris) is dropped, while an idle keep-alive connection is governed by
    ``idle_timeout`` (``timeOut``) instead.
    """

    read_header_timeout: float | None = None
    read_timeout: float | None = None
    _timers: dict[str, Any] | None = None

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._cancel_timers()
            self._transport().write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"Connection: close\r\nContent-Length: 0\r\n\r\n"
            )
            self.loseConnection()
            return
        self._start_timer("headers", self.read_header_timeout)
        self._start_timer("request", self.read_timeout)
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        self._cancel_timer("headers")
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        self._cancel_timer("request")
        super().allContentReceived()

    def _start_timer(self, name: str, seconds: float | None) -> None:
        if not seconds:
            return
        timers = self._timers if self._timers is not None else {}
        self._timers = timers
        if name not in timers:
            timers[name] = self.callLater(seconds, lambda: self._timed_out(name))

    def _timed_out(self, name: str) -> None:
        if self._timers is not None:
            self._timers.pop(name, None)
        self._transport().loseConnection()

    def _cancel_timer(self, name: str) -> None:
        call = self._timers.pop(name, None) if self._timers else None
        if call is not None and call.active():
            call.cancel()

    def _cancel_timers(self) -> None:
        for name in list(self._timers or ()):
            self._cancel_timer(name)

    def _transport(self) -> Any:
        return self.transport

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timers()
        super().connectionLost(reason)


def channel_protocol() -> _GenericHTTPChannelProtocol:
    """A protocol that starts as our HTTP/1.1 channel and can switch to HTTP/2 by ALPN."""
    return _GenericHTTPChannelProtocol(CaddyHTTPChannel())
