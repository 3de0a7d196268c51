"""Who may use the sync API: bearer-token clients, or loopback only when none are set.

With ``clients`` configured, every request needs ``Authorization: Bearer TOKEN`` (401
otherwise) and a read-only client's writes get 403. A browser cannot set headers on a
WebSocket, so the ``events`` upgrade may carry the token as a subprotocol instead
(:data:`BEARER_PROTOCOL_PREFIX`), never in the URL, where it would end up in logs and
history. With no clients the API has no
authentication at all, so it serves loopback connections only (403 for the rest); a
server whose listeners are all loopback addresses is then fully usable, which is the
seed's single-user setup.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path
from caddytw.sync.folder import StoreError

#: The subprotocol a WebSocket client offers to be served (and the one the server picks).
EVENTS_PROTOCOL = "caddytw.events"
#: ``caddytw.bearer.<base64url of the token, unpadded>``: a token offered as a WebSocket
#: subprotocol, next to :data:`EVENTS_PROTOCOL` (subprotocols must be HTTP tokens, hence
#: the encoding). The server never echoes it back.
BEARER_PROTOCOL_PREFIX = "caddytw.bearer."


def websocket_token(request: Any) -> bytes | None:
    """The token a WebSocket upgrade offers as a subprotocol, or ``None``."""
    if (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
        return None
    prefix = BEARER_PROTOCOL_PREFIX.encode("ascii")
    for line in request.requestHeaders.getRawHeaders(b"sec-websocket-protocol") or []:
        for offered in line.split(b","):
            offered = offered.strip()
            if offered.startswith(prefix):
                encoded = offered[len(prefix) :]
                try:
                    return base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
                except (binascii.Error, ValueError):
                    return None
    return None


@dataclass(frozen=True)
class SyncClient:
    """One configured client: ``id`` is the origin of its changes."""

    id: str
    token: str
    read_only: bool = False


def parse_clients(items: Sequence[Any], path: str) -> list[SyncClient]:
    """The handler's ``clients`` array: ``[{"id", "token", "read_only"}]``."""
    clients: list[SyncClient] = []
    seen_ids: set[str] = set()
    seen_tokens: set[str] = set()
    for index, item in enumerate(items):
        reader = ObjectReader(item, join_path(path, index))
        client = SyncClient(reader.text("id"), reader.text("token"), reader.flag("read_only"))
        reader.done()
        if not client.id:
            raise ConfigError(reader.at("id"), "a client needs an id")
        if client.id in seen_ids:
            raise ConfigError(reader.at("id"), f"duplicate client id {client.id!r}")
        if len(client.token) < 16:
            raise ConfigError(reader.at("token"), "a token needs at least 16 characters")
        if client.token in seen_tokens:
            raise ConfigError(reader.at("token"), "two clients share a token")
        seen_ids.add(client.id)
        seen_tokens.add(client.token)
        clients.append(client)
    return clients


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def listen_host(display: str) -> str:
    """The host of a ``host:port`` / ``[v6]:port`` listener ("" = every interface)."""
    if display.startswith("["):
        return display[1 : display.find("]")]
    return display.rpartition(":")[0]


def all_loopback(listen: Iterable[str]) -> bool:
    hosts = [listen_host(item) for item in listen]
    return bool(hosts) and all(is_loopback_host(host) for host in hosts)


class AccessPolicy:
    """Authenticates a request and says whether it may write."""

    def __init__(self, clients: Sequence[SyncClient]) -> None:
        self.clients = list(clients)

    @property
    def open(self) -> bool:
        return not self.clients

    def authenticate(self, request: Any) -> SyncClient | None:
        """The client making ``request`` (``None`` when the API is open); raises 401/403."""
        if self.open:
            peer = request.getClientAddress()
            if not is_loopback_host(getattr(peer, "host", "")):
                raise StoreError(
                    403,
                    "no sync clients are configured: only loopback connections are served",
                )
            return None
        header = request.getHeader(b"authorization")
        if header is None and (offered := websocket_token(request)) is not None:
            header = b"Bearer " + offered
        scheme, _, token = (header or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise StoreError(401, "missing bearer token")
        found = None
        for client in self.clients:  # compare every token, in constant time each
            if hmac.compare_digest(client.token.encode("utf-8"), token.strip()):
                found = client
        if found is None:
            raise StoreError(401, "invalid bearer token")
        return found

    @staticmethod
    def check_write(client: SyncClient | None) -> None:
        if client is not None and client.read_only:
            raise StoreError(403, f"client {client.id!r} is read-only")
