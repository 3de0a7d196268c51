"""Upgrade requests (WebSocket and others): one raw connection, then bytes both ways.

Twisted's HTTP client ignores 1xx answers, so an Upgrade request is written by hand on a
fresh upstream connection and the answer parsed with httptools. A ``101`` whose
``Upgrade`` matches the request turns both connections into a tunnel: the client's
connection is taken over from the HTTP/1.1 channel, each side is registered as the
other's producer (backpressure both ways), and closing either side closes the other.
Any other answer is relayed to the client as an ordinary response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httptools
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from caddytw.handlers.reverse_proxy.headers import upgrade_type

MAX_HEAD = 64 * 1024


class UpgradeFailed(Exception):
    """The upstream closed or answered garbage before a complete response head."""


def request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1\r\n"]
    for name, values in headers.getAllRawHeaders():
        lines.extend(name + b": " + value + b"\r\n" for value in values)
    lines.append(b"\r\n")
    return b"".join(lines)


def response_head(status: int, reason: bytes, headers: Headers) -> bytes:
    lines = [b"HTTP/1.1 %d " % status + reason + b"\r\n"]
    for name, values in headers.getAllRawHeaders():
        lines.extend(name + b": " + value + b"\r\n" for value in values)
    lines.append(b"\r\n")
    return b"".join(lines)


class ResponseHead:
    """A parsed upstream answer head; ``leftover`` is what followed a 101 head."""

    def __init__(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers = Headers()
        self.leftover = b""
        self.upgraded = False
        self.complete = False


class UpstreamSide(Protocol):
    """The upstream connection of an Upgrade request.

    ``head`` fires with a :class:`ResponseHead`. For a non-101 answer, the body goes to
    ``body_sink`` and ``end_sink(error_or_None)`` ends it; after :meth:`tunnel_to`, bytes go
    straight to the client transport.
    """

    def __init__(self, head_bytes: bytes, body: Any, body_length: int) -> None:
        self.head_bytes = head_bytes
        self.body = body
        self.body_length = body_length
        self.head: Deferred[ResponseHead] = Deferred()
        self.parsed = ResponseHead()
        self.parser = httptools.HttpResponseParser(self)
        self.body_sink: Callable[[bytes], None] = lambda data: None
        self.end_sink: Callable[[Failure | None], None] = lambda error: None
        self.peer: Any = None
        self.closed: Deferred[None] = Deferred()
        self._received = 0
        self._name = b""

    def connectionMade(self) -> None:
        self.transport.write(self.head_bytes)  # type: ignore[union-attr]
        if self.body_length:
            self.body.seek(0)
            FileSender().beginFileTransfer(self.body, self.transport)

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self.parsed.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.parsed.headers.addRawHeader(name, value)

    def on_headers_complete(self) -> None:
        self.parsed.status = self.parser.get_status_code()
        if self.parsed.status != 101:
            self.parsed.complete = True
            self.head.callback(self.parsed)

    def on_body(self, data: bytes) -> None:
        self.body_sink(data)

    def _end(self, error: Failure | None) -> None:
        sink, self.end_sink = self.end_sink, lambda error: None
        sink(error)

    def on_message_complete(self) -> None:
        if self.parsed.status != 101:
            self._end(None)
            if self.transport is not None:
                self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.write(data)
            return
        if self.parsed.upgraded:
            self.parsed.leftover += data
            return
        self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0]
            self.parsed.upgraded = True
            self.parsed.complete = True
            self.parsed.leftover = data[offset:]
            self.head.callback(self.parsed)
            return
        except httptools.HttpParserError as error:
            self._broken(f"malformed upstream response: {error}")
            return
        if not self.parsed.complete and self._received > MAX_HEAD:
            self._broken("upstream response head too large")

    def _broken(self, why: str) -> None:
        if not self.head.called:
            self.head.errback(UpgradeFailed(why))
        else:
            self._end(Failure(UpgradeFailed(why)))
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def tunnel_to(self, client_transport: Any) -> None:
        """Relay everything from now on to the client (after the 101 was sent)."""
        self.peer = client_transport
        if self.parsed.leftover:
            client_transport.write(self.parsed.leftover)
            self.parsed.leftover = b""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.head.called:
            self.head.errback(UpgradeFailed("upstream closed before answering"))
        elif self.peer is not None:
            self.peer.loseConnection()
        elif not self.parsed.upgraded:
            # Framed bodies completed in on_message_complete; a close-delimited one ends
            # here (httptools cannot be told about EOF), which the client sees as a close.
            framed = self.parsed.headers.hasHeader(b"content-length") or (
                self.parsed.headers.hasHeader(b"transfer-encoding")
            )
            clean = reason.check(ConnectionDone) is not None
            self._end(
                None if clean and not framed else Failure(UpgradeFailed("upstream closed early"))
            )
        self.closed.callback(None)


class UpstreamSideFactory(Factory):
    noisy = False

    def __init__(self, side: UpstreamSide) -> None:
        self.side = side

    def buildProtocol(self, addr: Any) -> UpstreamSide:
        return self.side


def response_upgrade_ok(requested: bytes, head: ResponseHead) -> bool:
    """A 101 must switch to the protocol the client asked for."""
    return upgrade_type(head.headers) == requested


def take_over_client(request: Any, on_data: Callable[[bytes], None], on_lost: Any) -> Any:
    """Detach the client connection from twisted.web's HTTP/1.1 channel.

    Returns the client transport. Bytes the channel had already buffered (sent after the
    request) are passed to ``on_data`` first; afterwards the channel's ``dataReceived`` and
    ``connectionLost`` feed ``on_data``/``on_lost``.
    """
    channel = request.channel
    transport = channel.transport
    channel.setTimeout(None)
    buffered = b"".join(getattr(channel, "_dataBuffer", []))
    channel._dataBuffer = []
    transport.unregisterProducer()
    channel.dataReceived = on_data
    channel.connectionLost = on_lost
    transport.resumeProducing()
    if buffered:
        on_data(buffered)
    return transport
