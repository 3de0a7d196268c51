"""Small real-network clients for the sync server tests: HTTP over http.client and a
minimal WebSocket reader (RFC 6455 handshake + unmasked server frames)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from caddytw.sync.protocol import FOLDER_MARKER, INDEX_DIR_NAME


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sync_route(root: Path | str, **fields: Any) -> list[dict[str, Any]]:
    """A ``/api/*`` route to ``file_sync``; a new folder (``create_root``) unless told."""
    handler = {"handler": "file_sync", "root": str(root), "create_root": True, **fields}
    return [{"match": [{"matcher": "path", "paths": ["/api/*"]}], "handle": [handler]}]


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:200]!r}>"


class Api:
    """One keep-alive connection to the server; ``q`` quotes a path for a query."""

    def __init__(self, port: int, token: str | None = None, prefix: str = "/api") -> None:
        self.port = port
        self.token = token
        self.prefix = prefix
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

    def close(self) -> None:
        self.conn.close()

    def call(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        # A non-simple header, as every real client sends: without tokens the server
        # refuses state changes that a cross-site form could make.
        sent = {"X-Requested-With": "caddytw-tests", **(headers or {})}
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        url = target if target.startswith("/") else f"{self.prefix}/{target}"
        try:
            self.conn.request(method, url, body=body, headers=sent)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            self.conn.request(method, url, body=body, headers=sent)
            response = self.conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def upload(self, path: str, data: bytes, **headers: str) -> Reply:
        fixed = {k.replace("_", "-"): v for k, v in headers.items()}
        return self.call("POST", f"upload?path={q(path)}", data, fixed)

    def download(self, path: str, **headers: str) -> Reply:
        fixed = {k.replace("_", "-"): v for k, v in headers.items()}
        return self.call("GET", f"download?path={q(path)}", None, fixed)

    def listing(self) -> dict[str, dict[str, Any]]:
        reply = self.call("GET", "list")
        assert reply.status == 200, reply
        return {item["path"]: item for item in reply.json()}

    def sync(self, operations: list[Any], client_id: str = "tester") -> Reply:
        body = json.dumps({"operations": operations, "client_id": client_id}).encode()
        return self.call("POST", "sync", body, {"Content-Type": "application/json"})


def q(path: str) -> str:
    return quote(path, safe="")


def wait_until_open(port: int, prefix: str = "/api") -> None:
    """Return once the server has opened its folder (index, marker written).

    The listening port opens before the folder does: the index thread opens the index and
    writes the folder marker (through a temp file) first, then serves what was asked, in
    order. A test that looks at the folder before any request could catch that temp file;
    one answered listing means the opening is over."""
    api = Api(port, prefix=prefix)
    try:
        assert api.call("GET", "list").status == 200
    finally:
        api.close()


def folder_view(root: Path) -> dict[str, Any]:
    """What the folder holds, in the listing's terms (path -> ("dir",) or (size, hash))."""
    view: dict[str, Any] = {}
    for directory, dirs, files in os.walk(root):
        rel_dir = Path(directory).relative_to(root)
        if INDEX_DIR_NAME in dirs:
            dirs.remove(INDEX_DIR_NAME)
        if directory == str(root) and FOLDER_MARKER in files:
            files.remove(FOLDER_MARKER)
        for name in dirs:
            view[(rel_dir / name).as_posix()] = ("dir",)
        for name in files:
            data = (Path(directory) / name).read_bytes()
            view[(rel_dir / name).as_posix()] = (len(data), sha(data))
    return view


def listing_view(listing: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        path: ("dir",) if item["is_directory"] else (item["size"], item["hash"])
        for path, item in listing.items()
    }


class WebSocket:
    """A blocking WebSocket client good enough for reading server pushes."""

    def __init__(
        self,
        port: int,
        path: str = "/api/events",
        token: str | None = None,
        origin: str | None = None,
        protocols: list[str] | None = None,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if origin:
            lines.append(f"Origin: {origin}")
        if protocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(protocols)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError(f"closed during handshake: {head!r}")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        self.head = head.decode("latin-1")
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        self.accepted = self.status == 101 and expected in self.head

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._exact(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        assert not second & 0x80, "server frames are never masked"
        return first & 0x0F, self._exact(length)

    def message(self) -> Any:
        """The next text message as JSON (answers pings on the way)."""
        while True:
            opcode, payload = self.frame()
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError(f"closed: {payload!r}")

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        self.sock.close()


@contextmanager
def upload_server(tmp_path: Path, max_upload_size: int) -> Iterator[Any]:
    """A real server with uploads on and ``max_upload_size``; ``.root`` is its folder."""
    from tests.support.ports import free_port
    from tests.support.server import running_server, simple_config

    port = free_port()
    root = tmp_path / "data"
    root.mkdir()
    route = sync_route(root, enable_upload=True, max_upload_size=max_upload_size)
    with running_server(simple_config(port, route), tmp_path, [port]) as srv:
        wait_until_open(port)
        srv.root = root
        yield srv


def everything(root: Path) -> list[str]:
    """Every name under ``root`` (temp files and the index included)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
