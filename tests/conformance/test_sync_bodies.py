"""``file_sync`` authenticates before it reads a body (issue 12 item 5 / finding 6), on a
real ``twistd`` process: an unauthenticated 4 GB upload gets 401 without ``100
Continue`` and leaves nothing on disk; an authenticated one is invited and stored."""

from __future__ import annotations

import hashlib
import socket
import time
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


def test_max_upload_size_rules_uploads_above_the_server_default(tmp_path: Path) -> None:
    """``file_sync``'s own limit replaces the server's ``max_request_body`` for its
    route: with 1 MiB server-wide and 4 MiB for uploads, 3 MiB is stored and 5 MiB is
    413; with neither set, a 5 GiB upload is invited (the 10 GiB default rules)."""
    data = tmp_path / "data"
    limited = tmp_path / "limited"
    port, other = free_port(), free_port()
    route = sync_route(data, enable_upload=True, max_upload_size=4 << 20)
    (tmp_path / "srv").mkdir()
    config = simple_config(port, route, max_request_body=1 << 20)
    with running_server(config, tmp_path / "srv", [port]):
        for size, status in ((3 << 20, b"201"), (5 << 20, b"413")):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    f"POST /api/upload?path=f{size}.bin HTTP/1.1\r\nHost: localhost\r\n"
                    f"X-Sync-Client: test\r\nContent-Length: {size}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                block = bytes(range(256)) * 256
                try:
                    for _ in range(size // len(block)):
                        sock.sendall(block)
                except OSError:
                    assert status == b"413"
                answer = read_all(sock, 5.0, 20.0)
            assert answer.split(b" ")[1] == status, answer[:300]
        assert (data / f"f{3 << 20}.bin").stat().st_size == 3 << 20
        assert not (data / f"f{5 << 20}.bin").exists()

    (tmp_path / "srv2").mkdir()
    config = simple_config(other, sync_route(limited, enable_upload=True))
    with running_server(config, tmp_path / "srv2", [other]):
        with socket.create_connection(("127.0.0.1", other), timeout=10) as sock:
            sock.sendall(
                b"POST /api/upload?path=huge.bin HTTP/1.1\r\nHost: localhost\r\n"
                b"X-Sync-Client: test\r\nExpect: 100-continue\r\n"
                b"Content-Length: %d\r\n\r\n" % (5 << 30)
            )
            invited = read_all(sock, 2.0, 10.0)
        assert invited.startswith(b"HTTP/1.1 100 Continue\r\n"), invited[:300]


def test_upload_streams_into_its_staged_file_in_the_folder(tmp_path: Path) -> None:
    """An upload is written once, into the store's staged temp file beside its target,
    while it arrives (it was spooled whole elsewhere first, then copied); a precondition
    that fails refuses before the body is invited."""
    port = free_port()
    data = tmp_path / "data"
    (tmp_path / "srv").mkdir()
    config = simple_config(port, sync_route(data, enable_upload=True))
    head = (
        "POST /api/upload?path={} HTTP/1.1\r\nHost: localhost\r\nX-Sync-Client: test\r\n"
        "Content-Length: {}\r\n{}\r\n"
    )
    with running_server(config, tmp_path / "srv", [port]):
        half = bytes(range(256)) * 8192  # 2 MiB
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.format("big.bin", 2 * len(half), "").encode() + half)
            deadline = time.monotonic() + 10
            staged: list[Path] = []
            while time.monotonic() < deadline:
                staged = [p for p in data.glob(".big.bin.*.tmp") if p.stat().st_size >= 1 << 20]
                if staged:
                    break
                time.sleep(0.05)
            assert staged, "nothing staged in the folder while the body arrives"
            sock.sendall(half)
            answer = read_all(sock, 2.0, 10.0)
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
        assert (data / "big.bin").read_bytes() == half + half
        assert not list(data.glob(".*.tmp"))

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                head.format(
                    "big.bin",
                    5,
                    "If-None-Match: *\r\nExpect: 100-continue\r\n"
                    f"X-Content-SHA256: {hashlib.sha256(b'hello').hexdigest()}\r\n",
                ).encode()
            )
            answer = read_all(sock, 2.0, 10.0)
        assert b"100 Continue" not in answer
        assert answer.startswith(b"HTTP/1.1 412 "), answer[:300]
