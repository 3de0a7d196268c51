"""``file_sync`` authenticates before it reads a body (issue 12 item 5 / finding 6), on a
real ``twistd`` process: an unauthenticated 4 GB upload gets 401 without ``100
Continue`` and leaves nothing on disk; an authenticated one is invited and stored."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conformance.test_h1 import read_all
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import sync_route

TOKEN = "t" * 32


def disk_usage(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_upload_is_authenticated_before_its_body_is_read(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    route = sync_route(data, enable_upload=True, clients=[{"id": "laptop", "token": TOKEN}])
    (tmp_path / "srv").mkdir()
    with running_server(simple_config(port, route), tmp_path / "srv", [port]):
        before = disk_usage(tmp_path)
        head = (
            b"POST /api/upload?path=big.bin HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Length: 4000000000\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
            answer = read_all(sock, 2.0, 10.0)
        assert b"100 Continue" not in answer
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert b"\r\nConnection: close\r\n" in answer

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + b"\r\n")
            sent = 0
            try:
                while sent < 32 << 20:
                    sock.sendall(b"z" * 65536)
                    sent += 65536
            except OSError:
                pass
            answer = read_all(sock, 1.0, 10.0)
        assert sent < 32 << 20
        assert answer == b"" or answer.startswith(b"HTTP/1.1 401 ")
        assert disk_usage(tmp_path) - before < 100_000  # logs at most, no spooled body

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/upload?path=small.txt HTTP/1.1\r\nHost: localhost\r\n"
                b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                b"Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            invited = sock.recv(100)
            assert invited.startswith(b"HTTP/1.1 100 Continue\r\n")
            sock.sendall(b"hello")
            answer = invited + read_all(sock, 2.0, 10.0)
        assert b"HTTP/1.1 201 " in answer
        assert (data / "small.txt").read_bytes() == b"hello"
