"""What the h2 and h3 probes run against: an upstream that records the request heads
it receives, and the routes (deny rules, reverse_proxy, file_server, a Host echo) both
caddytw and Caddy serve."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

SMALL = b"s" * 1024


class RecordingUpstream:
    """An HTTP/1.1 upstream that keeps the raw head of every request it receives."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.heads: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            conn.settimeout(10)
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                self.heads.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nupstream")

    def targets(self) -> list[bytes]:
        return [head.split(b"\r\n", 1)[0].split(b" ")[1] for head in self.heads]

    def close(self) -> None:
        self.listener.close()


def routes(root: Path, upstream: int) -> list[dict]:
    return [
        {
            "match": [{"path": ["/proxy/secret", "/static/secret.txt"]}],
            "handle": [{"handler": "static_response", "status_code": 403, "body": "denied"}],
        },
        {
            "match": [{"path": ["/proxy/*"]}],
            "handle": [
                {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{upstream}"}]}
            ],
        },
        {
            "match": [{"path": ["/static/*"]}],
            "handle": [{"handler": "file_server", "root": str(root)}],
        },
        {
            "match": [{"path": ["/limited/*"]}],
            "handle": [
                {"handler": "request_body", "max_size": 1000},
                {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{upstream}"}]},
            ],
        },
        {
            "match": [{"path": ["/abort"]}],
            "handle": [{"handler": "static_response", "abort": True}],
        },
        {
            "match": [{"path": ["/host"]}],
            "handle": [{"handler": "static_response", "body": "{http.request.host}"}],
        },
        {"handle": [{"handler": "static_response", "body": SMALL.decode()}]},
    ]
