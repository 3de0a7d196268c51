"""Drive a real caddytw Site over an in-memory transport: real HTTP parsing, no sockets.

``exchange(site, raw_request_bytes)`` feeds the bytes to the site's channel, runs any
already-due work, and returns the raw response bytes, parsed by :func:`parse_response`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from caddytw.server.build import build_app


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return None if values is None else ",".join(values)


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = lines[0].split(" ", 2)
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "chunked" in (headers.get("transfer-encoding") or []):
        body = _dechunk(body)
    return Response(int(status), reason[0] if reason else "", headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


class MemoryServer:
    """A config's first (or named) server, reachable without sockets."""

    def __init__(self, config: dict[str, Any], server: str | None = None, peer: str = "127.0.0.1"):
        self.reactor = MemoryReactorClock()
        built = build_app(config, self.reactor).servers
        chosen = next(b for b in built if server is None or b.config.name == server)
        self.site = chosen.site
        self.peer = peer

    def raw(self, data: bytes, *, secure: bool = False) -> bytes:
        protocol = self.site.buildProtocol(IPv4Address("TCP", self.peer, 40000))
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", self.peer, 40000),
        )
        protocol.makeConnection(transport)
        protocol.dataReceived(data)
        self.reactor.advance(0)
        output = transport.value()
        protocol.connectionLost(None)
        return output

    def request(
        self,
        method: str = "GET",
        target: str = "/",
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        host: str = "localhost",
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        return parse_response(self.raw(raw))


def memory_server(routes: list[Any], **server: Any) -> MemoryServer:
    return MemoryServer(
        {"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": routes, **server}}}}}
    )
