"""Who may use the sync API: bearer-token clients, or this machine only when none are set.

With ``clients`` configured, every request needs ``Authorization: Bearer TOKEN`` (401
otherwise) and a read-only client's writes get 403; the client is the token's ``id``. A
browser cannot set headers on a WebSocket, so the ``events`` upgrade may carry the token
as a subprotocol instead (:data:`BEARER_PROTOCOL_PREFIX`), never in the URL, where it
would end up in logs and history.

With no clients the API has no authentication at all, so it answers only what can only
come from a program on this machine (403 with a JSON reason otherwise):

- a loopback TCP peer, *and* a loopback ``Host`` (``localhost``, ``127.0.0.0/8``,
  ``[::1]``, any port): a foreign name is DNS rebinding, a page on another site
  reaching the loopback server through a name it controls;
- no ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP``: a proxy on the machine
  (ours or any) would otherwise open the API to whoever reaches the proxy;
- no foreign ``Origin`` (only the server's own, ``http(s)://`` + the ``Host``) and no
  ``Sec-Fetch-Site: cross-site``: a page on another site (the WebSocket included);
- state changes (POST, PUT, DELETE) only as ``application/json`` or with a non-simple
  header (``X-Sync-Client``, which synclient sends, or ``X-Requested-With``): a
  cross-site form or ``fetch`` without a CORS preflight can send neither.

A server whose listeners are all loopback addresses is then fully usable by local
programs, which is the single-user setup of the project's original design
brief.
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


PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
#: Headers a browser page cannot send cross-site without a CORS preflight (which the
#: API never answers); one of them, or a JSON body, marks a state change as not a form.
NON_SIMPLE_HEADERS = (b"x-sync-client", b"x-requested-with")
STATE_CHANGING = (b"POST", b"PUT", b"DELETE", b"PATCH")


def host_part(authority: str) -> str:
    """The host of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``)."""
    if authority.startswith("["):
        end = authority.find("]")
        return authority[1:end] if end > 0 else ""
    return authority.rpartition(":")[0] if authority.count(":") == 1 else authority


def loopback_authority(authority: str) -> bool:
    host = host_part(authority.strip()).lower().rstrip(".")
    if host != "localhost" and ":" not in host and not host.replace(".", "").isdigit():
        return False  # a name other than localhost (an IPv4 must be dotted digits)
    return is_loopback_host(host)


def foreign(request: Any) -> str | None:
    """Why ``request`` may not come from a program on this machine, or ``None``."""
    peer = request.getClientAddress()
    if not is_loopback_host(getattr(peer, "host", "")):
        raise StoreError(
            403, "no sync clients are configured: only loopback connections are served"
        )
    for name in PROXY_HEADERS:
        if request.getHeader(name) is not None:
            return f"the request came through a proxy ({name.decode()})"
    host = (request.getHeader(b"host") or b"").decode("latin-1")
    if not loopback_authority(host):
        return f"Host {host!r} is not a loopback name or address"
    origin = request.getHeader(b"origin")
    if origin is not None:
        text = origin.decode("latin-1").strip().lower()
        if text not in (f"http://{host.lower()}", f"https://{host.lower()}"):
            return f"Origin {origin.decode('latin-1')!r} is not this server"
    if (request.getHeader(b"sec-fetch-site") or b"").lower() == b"cross-site":
        return "a cross-site request"
    if request.method in STATE_CHANGING:
        kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if kind != b"application/json" and not any(
            request.getHeader(name) for name in NON_SIMPLE_HEADERS
        ):
            return (
                "a change needs Content-Type: application/json or an X-Sync-Client or "
                "X-Requested-With header"
            )
    return None


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
            why = foreign(request)
            if why is not None:
                raise StoreError(
                    403, f"no sync clients are configured: only this machine is served ({why})"
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
