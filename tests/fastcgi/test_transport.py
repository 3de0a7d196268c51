"""The fastcgi transport through caddytw alone, against the real php-fpm: unix
sockets, HTTPS, ``env`` with placeholders, chunked uploads, stderr capture, a large
response with flat memory, and a dead application."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.harness import fetch
from tests.fastcgi.phpfpm import PhpFpm
from tests.proxy.harness import PeakRSS
from tests.support.configs import plain_and_tls
from tests.support.ports import free_port
from tests.support.server import ServerProcess, running_server
from tests.tls.pki import TestCA


def fastcgi_routes(dial: str, docroot: Path, **transport: Any) -> list[Any]:
    return [
        {
            "handle": [
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": dial}],
                    "transport": {
                        "protocol": "fastcgi",
                        "root": str(docroot),
                        "split_path": [".php"],
                        **transport,
                    },
                }
            ]
        }
    ]


@pytest.fixture(scope="module")
def site(
    php_fpm: PhpFpm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, int, int, str]]:
    """TLS and plain listeners proxying to the unix socket pool, with env overrides."""
    work = tmp_path_factory.mktemp("fastcgi")
    ca = TestCA()
    cert, key, _ = ca.write_leaf(work, "site", ["site.test"])
    cafile = str(ca.write(work / "ca.pem"))
    plain, tls = free_port(), free_port()
    routes = fastcgi_routes(
        f"unix/{php_fpm.socket}",
        php_fpm.docroot,
        env={"APP_ENV": "test-{http.request.method}", "HTTP_X_FROM_ENV": "env"},
        capture_stderr=True,
        read_timeout="30s",
    )
    config = plain_and_tls(plain, tls, routes, cert, key, work / "storage")
    with running_server(config, work, [plain, tls]) as server:
        yield server, plain, tls, cafile


def test_unix_socket_and_env_placeholders(site: tuple[ServerProcess, int, int, str]) -> None:
    _, plain, _, _ = site
    answer = fetch(plain, "GET", "/info.php/tail?q=1", {"X-From-Env": "client"})
    assert answer.status == 200
    env = json.loads(answer.body)
    assert env["APP_ENV"] == "test-GET"
    assert env["HTTP_X_FROM_ENV"] == "client"  # headers win over env, as in Caddy
    assert env["PATH_INFO"] == "/tail"
    assert env["SCRIPT_NAME"] == "/info.php"
    assert env["REQUEST_URI"] == "/info.php/tail?q=1"
    assert "HTTPS" not in env
    assert env["SERVER_PORT"] == str(plain)


def test_https_is_on_over_tls(site: tuple[ServerProcess, int, int, str]) -> None:
    _, _, tls, cafile = site
    context = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", tls), timeout=10)
    with context.wrap_socket(raw, server_hostname="site.test") as sock:
        sock.sendall(b"GET /info.php HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        env = json.loads(response.read())
    assert response.status == 200
    assert env["HTTPS"] == "on"
    assert env["REQUEST_SCHEME"] == "https"
    assert env["SERVER_NAME"] == "site.test"
    assert env["SERVER_PORT"] == "443"


def test_chunked_upload_is_echoed(site: tuple[ServerProcess, int, int, str]) -> None:
    _, plain, _, _ = site
    body = b"0123456789abcdef" * 40000  # 640 KB
    connection = http.client.HTTPConnection("127.0.0.1", plain, timeout=30)
    connection.request(
        "POST",
        "/echo.php",
        body=iter([body[:1000], body[1000:]]),
        headers={"Content-Type": "application/octet-stream"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.read() == body
    connection.close()


def test_stderr_is_logged(site: tuple[ServerProcess, int, int, str]) -> None:
    server, plain, _, _ = site
    answer = fetch(plain, "GET", "/stderr.php?tag=one")
    assert (answer.status, answer.body) == (200, b"logged")
    deadline = time.monotonic() + 5
    while "fastcgi-stderr-marker one" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "fastcgi-stderr-marker one" in server.log()


def test_fifty_megabytes_with_flat_memory(site: tuple[ServerProcess, int, int, str]) -> None:
    """A slow reader holds php-fpm back instead of caddytw buffering 50 MB."""
    server, plain, _, _ = site
    pid = server.process.pid
    fetch(plain, "GET", "/big.php?mb=2")  # warm up
    sock = socket.create_connection(("127.0.0.1", plain), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    received = 0
    with PeakRSS(pid) as rss, sock:
        sock.sendall(b"GET /big.php?mb=50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(1.5)  # not reading: php-fpm could have sent everything by now
        slow_peak = rss.peak
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    baseline = rss.baseline
    assert received > 50 << 20
    assert slow_peak - baseline < 20 << 20
    assert rss.peak - baseline < 20 << 20


def test_application_down_is_502(php_fpm: PhpFpm, tmp_path: Path) -> None:
    port = free_port()
    routes = fastcgi_routes(f"unix/{tmp_path / 'nobody.sock'}", php_fpm.docroot)
    from tests.support.server import simple_config

    with running_server(simple_config(port, routes), tmp_path, [port]):
        assert fetch(port, "GET", "/info.php").status == 502
        # A NUL in the path never reaches PHP (it could run a non-PHP file as code).
        assert fetch(port, "GET", "/hello.txt%00.php").status == 400
