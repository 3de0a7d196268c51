"""``GET /api/events``: every committed change pushed to every connected WebSocket.

One :class:`EventHub` per store: it subscribes to the store's commits and sends each
:class:`~caddytw.sync.protocol.Change` as a JSON text message
(``{"seq", "path", "op", "origin", "metadata"}``) to every open connection. Autobahn
pings idle connections and drops the ones that stop answering; :meth:`EventHub.close_all`
closes every connection cleanly (a close frame, 1000) when the server stops.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.logger import Logger

from caddytw.admin import metrics
from caddytw.sync.access import EVENTS_PROTOCOL
from caddytw.sync.protocol import Change, dumps

log = Logger()

PING_INTERVAL = 20.0
PING_TIMEOUT = 10.0


class EventProtocol(WebSocketServerProtocol):
    """One subscriber; it only listens (messages it sends are ignored)."""

    hub: EventHub

    def onConnect(self, request: Any) -> str | None:
        """Pick :data:`EVENTS_PROTOCOL` when offered (a browser that offered its token as
        a subprotocol needs one picked, and the token one must never be echoed)."""
        return EVENTS_PROTOCOL if EVENTS_PROTOCOL in request.protocols else None

    def onOpen(self) -> None:
        self.hub.connections.add(self)
        metrics.sync_client_connected(self.hub.label)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        pass

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self in self.hub.connections:
            self.hub.connections.discard(self)
            metrics.sync_client_disconnected(self.hub.label)


class EventHub:
    """The connected WebSocket clients of one store, and the resource that upgrades."""

    def __init__(self, label: str = "", ping_interval: float = PING_INTERVAL) -> None:
        self.label = label  # the folder, as metrics name it
        self.connections: set[EventProtocol] = set()
        hub = self

        class Protocol(EventProtocol):
            pass

        Protocol.hub = hub
        self.factory = WebSocketServerFactory()
        self.factory.protocol = Protocol
        self.factory.setProtocolOptions(
            autoPingInterval=ping_interval,
            autoPingTimeout=PING_TIMEOUT,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=5,
            maxMessagePayloadSize=64 * 1024,
            maxFramePayloadSize=64 * 1024,
        )
        self.resource = WebSocketResource(self.factory)

    def publish(self, changes: list[Change]) -> None:
        """Send each change to every open connection (in the reactor thread)."""
        metrics.sync_committed(self.label, len(changes))
        for change in changes:
            message = dumps(change)
            for connection in list(self.connections):
                try:
                    connection.sendMessage(message, isBinary=False)
                except Exception:
                    log.failure("could not send a sync event")
                    self.connections.discard(connection)

    def render(self, request: Any) -> Any:
        request.long_lived = True  # an open event stream must not hold up shutdown
        return self.resource.render(request)

    def close_all(self, reason: str = "server shutting down") -> None:
        for connection in list(self.connections):
            metrics.sync_client_disconnected(self.label)
            try:  # autobahn lets applications send 1000 or 3000-4999 only
                connection.sendClose(1000, reason)
            except Exception:
                log.failure("could not close a sync event connection")
        self.connections.clear()
