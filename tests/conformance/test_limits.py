"""Server-wide wire limits set in the config (caddytw extensions, docs/security.md):
the listen backlog (default: the kernel's maximum, as Caddy) and the request body
limit, on a real ``twistd`` process."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.server import simple_config, start_server

ROUTES = [
    {
        "handle": [
            {"handler": "request_body", "max_size": 1 << 40},
            {"handler": "static_response", "body": "ok"},
        ]
    }
]


def server_config(port: int, **extra: Any) -> dict[str, Any]:
    return simple_config(port, ROUTES, **extra)


def backlog_of(port: int) -> int:
    """The accept queue length of the socket listening on ``port`` (ss's Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_listen_backlog_defaults_to_the_kernel_maximum_and_is_configurable(
    tmp_path: Path,
) -> None:
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    first, second = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    default = start_server(server_config(first), tmp_path / "a", [first])
    try:
        assert backlog_of(first) == max(somaxconn, 128)
    finally:
        default.stop()
    configured = start_server(server_config(second, listen_backlog=77), tmp_path / "b", [second])
    try:
        assert backlog_of(second) == 77
    finally:
        configured.stop()


def test_max_request_body_refuses_larger_bodies(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(server_config(port, max_request_body=1000), tmp_path, [port])
    try:
        for size, status in ((1000, b"200"), (1001, b"413")):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n" % size + b"x" * size
                )
                answer = sock.recv(65536)
            assert answer.split(b" ")[1] == status
    finally:
        server.stop()
