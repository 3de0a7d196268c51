"""What a request needs from the connection it arrived on: the ``Channel`` protocol.

A :class:`caddytw.http.request.CaddyRequest` (the server's own request class) talks to its
``channel`` and to nothing else below it. Three classes are channels, one per HTTP
version, and each is the whole exchange as the request sees it:

- HTTP/1.1: :class:`caddytw.wire.h1.FastHTTPChannel`, the TCP (or TLS) connection;
- HTTP/2: :class:`caddytw.wire.h2.CaddyH2Stream`, one stream of a connection;
- HTTP/3: :class:`caddytw.wire.h3.stream.H3Stream`, one QUIC stream.

Writing the response goes down through ``writeHeaders`` (or ``write_head``, the head
with the first body bytes), ``write``/``writeSequence`` and ``requestDone``; a producer
(a file, a proxied body) is paused and resumed by the channel through
``registerProducer``; ``loseConnection`` ends the exchange early (the
connection for HTTP/1.1, a stream reset for HTTP/2 and HTTP/3). ``protocol_name`` says
which of the three it is, in the names Caddy's ``protocols`` setting uses.

The method names are twisted.web's (``twisted.web.http.Request`` calls them, and
``CaddyRequest`` keeps them), so that every twisted.web producer and ``notifyFinish``
works as it does on twisted's channels, and ``CaddyRequest`` also runs on twisted's own
``HTTPChannel`` (a caddytw resource tree mounted in a plain twisted.web ``Site``).
This module imports nothing from caddytw: the request's layer can name the protocol
without depending on the wire.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from twisted.internet.interfaces import IAddress
from twisted.web.http_headers import Headers

ProtocolName = Literal["h1", "h2", "h3"]


@runtime_checkable
class Channel(Protocol):
    """One request/response exchange's view of its connection (see the module doc)."""

    #: ``"h1"``, ``"h2"`` or ``"h3"``: the HTTP version the exchange is carried by.
    protocol_name: ProtocolName
    #: The ``CaddySite`` that built the request (its server's routes, limits and logs).
    site: Any
    #: What ``loseConnection`` acts on from a handler's side: the TCP/TLS transport for
    #: HTTP/1.1, the stream itself for HTTP/2 and HTTP/3.
    transport: Any

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Headers) -> None:
        """Send the response head (held by HTTP/1.1 until the first body bytes)."""

    def write_head(
        self, version: bytes, code: bytes, reason: bytes, headers: Headers, body: bytes
    ) -> None:
        """Send the response head and the first body bytes (already framed, never
        empty) together: HTTP/1.1 sends them in one write (an answer that comes after
        the dispatch, such as a proxied one, would otherwise cost a send for each)."""

    def write(self, data: bytes) -> None:
        """Send body bytes (framed as the version requires)."""

    def writeSequence(self, data: list[bytes]) -> None:
        """Send several pieces of body at once."""

    def requestDone(self, request: Any) -> None:
        """The response is complete: end the message, then keep-alive or close."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let the channel pause and resume ``producer`` as the peer reads (or not)."""

    def unregisterProducer(self) -> None:
        """The producer is done."""

    def loseConnection(self) -> None:
        """End the exchange now (close HTTP/1.1's connection, reset an h2/h3 stream)."""

    def getPeer(self) -> IAddress:
        """The client's address."""

    def getHost(self) -> IAddress:
        """The local address the request arrived on (its port announces Alt-Svc)."""

    def isSecure(self) -> bool:
        """Whether the exchange is encrypted (TLS, or QUIC for HTTP/3)."""

    def _respondToBadRequestAndDisconnect(self) -> None:
        """twisted.web's ``Request`` calls this when it cannot parse what it read (a
        broken form body): answer 400 and end the exchange."""


def head_then_body(
    channel: Channel, version: bytes, code: bytes, reason: bytes, headers: Headers, body: bytes
) -> None:
    """``write_head`` for a channel whose head and body leave apart anyway (HTTP/2 and
    HTTP/3 frame them separately)."""
    channel.writeHeaders(version, code, reason, headers)
    channel.write(body)
