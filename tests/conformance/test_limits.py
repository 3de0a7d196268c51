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

from tests.conformance.test_h1 import read_all
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


def post(port: int, path: str, framing: bytes, body: bytes) -> bytes:
    """One request on its own connection; the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST "
            + path.encode()
            + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            + framing
            + b"\r\n\r\n"
            + body
        )
        answer = read_all(sock, 5.0, 10.0)
    return answer.split(b" ")[1]


def test_max_request_body_is_the_default_a_route_limit_replaces(tmp_path: Path) -> None:
    """``max_request_body`` limits routes that state no limit (here a reverse_proxy
    collecting a chunked body); a route's ``request_body`` ``max_size`` replaces it,
    above or below, as Caddy users set limits per route."""
    port = free_port()
    routes = [
        {
            "match": [{"path": ["/raised"]}],
            "handle": [
                {"handler": "request_body", "max_size": 2000},
                {"handler": "static_response", "body": "ok"},
            ],
        },
        {
            "match": [{"path": ["/lowered"]}],
            "handle": [
                {"handler": "request_body", "max_size": 10},
                {"handler": "static_response", "body": "ok"},
            ],
        },
        {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{port}"}]}]},
    ]
    config = simple_config(port, routes, max_request_body=1000)
    server = start_server(config, tmp_path, [port])
    try:
        length = b"Content-Length: %d"
        assert post(port, "/raised", length % 2000, b"x" * 2000) == b"200"
        assert post(port, "/raised", length % 2001, b"x" * 2001) == b"413"
        assert post(port, "/lowered", length % 11, b"x" * 11) == b"413"
        chunked = b"Transfer-Encoding: chunked"
        # The proxy collects a chunked body first, up to the server's default.
        assert post(port, "/", chunked, b"3e9\r\n" + b"x" * 1001 + b"\r\n0\r\n\r\n") == b"413"
    finally:
        server.stop()
