"""The server's change notifications (``GET /api/events`` WebSocket), kept connected.

A ``ClientService`` redials with exponential backoff (0.25 s doubling to 10 s) whenever
the connection drops, e.g. while the server restarts. Each message is a
:class:`~caddytw.sync.protocol.Change`; the engine only uses it as a hint to pull the
journal, so a lost message costs latency, never correctness. ``on_connect`` runs after
every (re)connection, because changes may have happened while disconnected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.application.internet import ClientService, backoffPolicy
from twisted.logger import Logger

from caddytw.sync.protocol import Change, ProtocolError, loads

log = Logger()


class _EventsProtocol(WebSocketClientProtocol):
    factory: EventsFactory

    def onOpen(self) -> None:
        self.factory.on_connect()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            change = Change.from_json(loads(payload))
        except ProtocolError as error:
            log.warn("ignoring a bad event: {error}", error=error)
            return
        self.factory.on_change(change)


class EventsFactory(WebSocketClientFactory):
    protocol = _EventsProtocol  # type: ignore[assignment]

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        on_change: Callable[[Change], None],
        on_connect: Callable[[], None],
    ) -> None:
        super().__init__(url, headers=headers)
        self.on_change = on_change
        self.on_connect = on_connect


def events_service(
    url: str,
    headers: dict[str, str],
    on_change: Callable[[Change], None],
    on_connect: Callable[[], None],
    reactor: Any = None,
) -> ClientService:
    """A service that keeps one events connection open while running."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
    from twisted.internet.ssl import optionsForClientTLS

    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=10)
    if secure:
        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    factory = EventsFactory(url, headers, on_change, on_connect)
    return ClientService(
        endpoint,
        factory,
        retryPolicy=backoffPolicy(initialDelay=0.25, maxDelay=10.0, factor=2.0),
        clock=reactor,
    )
