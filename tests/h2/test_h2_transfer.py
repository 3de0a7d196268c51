"""HTTP/2 transfers through ``caddytw.wire.h2.CaddyH2Connection`` in a real server: large
downloads and uploads byte for byte (curl, h2c and TLS), many concurrent streams
(h2load), and a bounded server memory while a client that opened a 1 GiB window does
not read."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from tests.support.configs import plain_and_tls
from tests.support.ports import free_port
from tests.support.server import ServerProcess, running_server
from tests.tls.pki import TestCA

BIG = 48 * 1024 * 1024 + 4321  # many windows, frames and file chunks; odd tail
SPARSE = 512 * 1024 * 1024  # served from a sparse file for the memory test


class _HashUpstream(BaseHTTPRequestHandler):
    """Answers a POST with the SHA-256 and length of the body it received."""

    def do_POST(self) -> None:
        remaining = int(self.headers["Content-Length"])
        digest = hashlib.sha256()
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            assert chunk
            digest.update(chunk)
            remaining -= len(chunk)
        body = f"{digest.hexdigest()} {self.headers['Content-Length']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HashUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class Site:
    def __init__(self, server: ServerProcess, plain: int, tls: int, cafile: str, root: Path):
        self.server, self.plain, self.tls, self.cafile, self.root = server, plain, tls, cafile, root

    def h2c(self, path: str) -> str:
        return f"http://127.0.0.1:{self.plain}{path}"

    def tls_args(self, path: str) -> list[str]:
        resolve = f"site.test:{self.tls}:127.0.0.1"
        return [
            "--http2",
            "--cacert",
            self.cafile,
            "--resolve",
            resolve,
            f"https://site.test:{self.tls}{path}",
        ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, upstream: int) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("h2")
    root = work / "root"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(BIG))
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(SPARSE)
    (root / "small.txt").write_bytes(b"s" * 1024)
    # (one byte value: nghttp prints concurrent streams' DATA as it arrives, interleaved)
    (root / "odd.bin").write_bytes(b"o" * 1283)
    ca = TestCA()
    cert, key, _ = ca.write_leaf(work, "site", ["site.test"])
    cafile = str(ca.write(work / "ca.pem"))
    plain, tls = free_port(), free_port()
    routes = [
        {
            "match": [{"path": ["/upload"]}],
            "handle": [
                {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{upstream}"}]}
            ],
        },
        {"handle": [{"handler": "file_server", "root": str(root)}]},
    ]
    config = plain_and_tls(plain, tls, routes, cert, key, work / "storage")
    with running_server(config, work, [plain, tls]) as server:
        yield Site(server, plain, tls, cafile, root)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "60", *args], capture_output=True, text=True, timeout=90
    )


def h2load_ok(*args: str) -> str:
    result = subprocess.run(["h2load", *args], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("scheme", ["h2c", "tls"])
def test_large_download_byte_for_byte(site: Site, tmp_path: Path, scheme: str) -> None:
    out = tmp_path / "out.bin"
    target = (
        ["--http2-prior-knowledge", site.h2c("/big.bin")]
        if scheme == "h2c"
        else site.tls_args("/big.bin")
    )
    result = curl("-o", str(out), "-w", "%{http_version} %{size_download}", *target)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"2 {BIG}"
    assert out.read_bytes() == (site.root / "big.bin").read_bytes()


@pytest.mark.parametrize("scheme", ["h2c", "tls"])
def test_large_upload(site: Site, scheme: str) -> None:
    body = site.root / "big.bin"
    target = (
        ["--http2-prior-knowledge", site.h2c("/upload")]
        if scheme == "h2c"
        else site.tls_args("/upload")
    )
    result = curl("--data-binary", f"@{body}", "-w", " %{http_version}", *target)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(body.read_bytes()).hexdigest()
    assert result.stdout == f"{digest} {BIG} 2"


def test_many_concurrent_streams(site: Site) -> None:
    small = h2load_ok("-n", "2000", "-c", "4", "-m", "100", site.h2c("/small.txt"))
    assert "2000 succeeded, 0 failed" in small and "2000 2xx" in small
    # Large bodies on many streams of one connection share its windows and buffers.
    big = h2load_ok("-n", "24", "-c", "1", "-m", "24", "-w", "30", "-W", "30", site.h2c("/big.bin"))
    assert "24 succeeded, 0 failed" in big and "24 2xx" in big
    total = re.search(r"traffic: \S+ \((\d+)\) total", big)
    assert total and int(total.group(1)) > 24 * BIG


@pytest.mark.parametrize("bits", [8, 10, 11, 16])
@pytest.mark.parametrize("name", ["small.txt", "odd.bin"])
def test_small_answers_within_the_clients_windows(site: Site, bits: int, name: str) -> None:
    """nghttp (nghttp2, which fails a connection whose peer overruns a window) with
    stream and connection windows of 2**bits - 1 bytes, smaller or larger than the
    1 KiB and 1.25 KiB files: twenty concurrent requests answered within the reads that
    bring them, every body whole (framed as bytes when it fits, queued when not)."""
    url = site.h2c(f"/{name}")
    result = subprocess.run(
        ["nghttp", "-w", str(bits), "-W", str(bits), "-m", "20", url],
        capture_output=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (site.root / name).read_bytes() * 20


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_bounded_for_a_client_that_does_not_read(site: Site) -> None:
    """The client opens 1 GiB windows (so the peer's flow control allows buffering the
    whole 512 MiB file), requests it and then reads nothing: the server must stop at its
    own per-stream buffer instead of queueing the file in memory."""
    pid = site.server.process.pid
    before = rss_kib(pid)
    sock = socket.create_connection(("127.0.0.1", site.plain))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**30}
    )
    conn.initiate_connection()
    conn.increment_flow_control_window(2**30 - 65_535)
    headers = [
        (":method", "GET"),
        (":path", "/sparse.bin"),
        (":scheme", "http"),
        (":authority", "127.0.0.1"),
    ]
    conn.send_headers(1, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    try:
        # Read just the first bytes (the response has started), then stop reading.
        sock.settimeout(10)
        started = b""
        while len(started) < 100_000:
            chunk = sock.recv(65536)
            assert chunk
            started += chunk
        growth = 0
        for _ in range(10):  # ~2 s: plenty of time to queue hundreds of MiB if unbounded
            time.sleep(0.2)
            growth = max(growth, rss_kib(pid) - before)
        assert growth < 40 * 1024, f"server RSS grew by {growth} KiB"
    finally:
        sock.close()
    # The server is still fine afterwards.
    result = curl("--http2-prior-knowledge", site.h2c("/small.txt"))
    assert result.stdout == "s" * 1024
