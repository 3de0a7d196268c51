"""file_server in a real ``twistd -n caddy`` process, over real sockets.

Covers what needs real IO: bodies larger than one chunk (streamed by the producer),
a 1 GiB sparse file served with flat memory while other requests are answered, clients
leaving mid-transfer (no descriptor leak), and the main features end to end.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.file_server.tree import BIG, HELLO, HELLO_ETAG, SECRET, make_tree
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config

GIB = 1 << 30


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("process")
    site = make_tree(base)
    with open(site / "huge.img", "wb") as handle:
        handle.truncate(GIB)  # sparse: no disk used, reads return zeros
    port = free_port()
    handler = {
        "handler": "file_server",
        "root": str(site),
        "browse": {},
        "hide": [".hidden"],
        "precompressed": {"gzip": {}, "br": {}},
        "precompressed_order": ["br", "gzip"],
    }
    config = simple_config(port, [{"handle": [handler]}], protocols=["h1", "h2", "h2c"])
    workdir = base / "run"
    workdir.mkdir()
    with running_server(config, workdir, [port]) as running:
        yield running


def get(server, path, headers=None, method="GET"):
    connection = http.client.HTTPConnection("127.0.0.1", server.ports[0], timeout=30)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in kB (VmRSS, VmHWM)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_fds(pid: int, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = open_fds(pid)
    while count > expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = open_fds(pid)
    return count


class RawGet:
    """A GET over a plain socket, read at the test's pace (to hold a transfer open)."""

    def __init__(self, port: int, path: str, headers: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        request = f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
        self.sock.sendall(request.encode())
        self.buffer = bytearray(1 << 20)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed before headers"
            head += chunk
        self.head, _, first = head.partition(b"\r\n\r\n")
        self.received = len(first)
        self.sample = first[:64]

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def read(self, limit: int | None = None) -> int:
        """Read (and count) up to ``limit`` more bytes, or to the end."""
        view = memoryview(self.buffer)
        while limit is None or self.received < limit:
            count = self.sock.recv_into(view)
            if not count:
                break
            if len(self.sample) < 64:
                self.sample += bytes(view[: min(count, 64 - len(self.sample))])
            self.received += count
        return self.received

    def close(self) -> None:
        self.sock.close()


# -- features end to end ----------------------------------------------------------------


def test_small_file_and_head(server):
    response, body = get(server, "/hello.txt")
    assert (response.status, body) == (200, HELLO)
    assert response.getheader("ETag") == HELLO_ETAG
    response, body = get(server, "/hello.txt", method="HEAD")
    assert (response.status, body, response.getheader("Content-Length")) == (200, b"", "12")


def test_streamed_body_is_exact(server):
    response, body = get(server, "/big.bin")
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(BIG))
    assert body == BIG


def test_ranges_over_the_wire(server):
    response, body = get(server, "/big.bin", {"Range": "bytes=1000-200999"})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes 1000-200999/{len(BIG)}"
    assert body == BIG[1000:201000]
    response, body = get(server, "/big.bin", {"Range": "bytes=0-99999,-150000"})
    assert response.status == 206
    boundary = re.search(r"boundary=(\w+)", response.getheader("Content-Type")).group(1)
    assert int(response.getheader("Content-Length")) == len(body)
    parts = body.split(b"--" + boundary.encode())[1:-1]
    payloads = [p.partition(b"\r\n\r\n")[2].removesuffix(b"\r\n") for p in parts]
    assert payloads == [BIG[:100000], BIG[-150000:]]
    response, _ = get(server, "/big.bin", {"Range": f"bytes={len(BIG)}-"})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{len(BIG)}"


def test_conditional_304(server):
    response, body = get(server, "/hello.txt", {"If-None-Match": HELLO_ETAG})
    assert (response.status, body) == (304, b"")


def test_browse_json_and_html(server):
    response, body = get(server, "/sub/", {"Accept": "application/json"})
    assert response.status == 200
    assert [item["name"] for item in json.loads(body)] == ["deeper/", "a.txt"]
    response, body = get(server, "/")
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b'href="./hello.txt"' in body and b".hidden" not in body
    response, _ = get(server, "/sub")
    assert (response.status, response.getheader("Location")) == (308, "/sub/")


def test_precompressed_and_hide(server):
    response, body = get(server, "/pre/app.js", {"Accept-Encoding": "gzip, br"})
    assert (body, response.getheader("Content-Encoding")) == (b"BROTLI-BYTES!", "br")
    assert response.getheader("Vary") == "Accept-Encoding"
    response, _ = get(server, "/.hidden")
    assert response.status == 404


@pytest.mark.parametrize(
    "path", ["/escape.txt", "/escdir/secret.txt", "/%2e%2e/outside/secret.txt", "/abs-escape"]
)
def test_nothing_outside_the_root(server, path):
    response, body = get(server, path)
    assert response.status == 404
    assert SECRET not in body


def test_http2_streams_the_same_bytes(server, tmp_path):
    """Over h2c the body goes through HTTP/2 flow control instead of the TCP buffer."""
    out = tmp_path / "big.out"
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "--max-time",
            "30",
            "-o",
            str(out),
            "-w",
            "%{http_version} %{http_code}",
            f"{server.url}/big.bin",
        ],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert result.stdout == "2 200", result.stderr
    assert out.read_bytes() == BIG
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "--max-time",
            "30",
            "-r",
            "10-19",
            f"{server.url}/big.bin",
        ],
        capture_output=True,
        timeout=40,
    )
    assert result.stdout == BIG[10:20]


def test_method_not_allowed(server):
    response, _ = get(server, "/hello.txt", method="DELETE")
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD"


# -- large files --------------------------------------------------------------------------


def test_one_gib_with_flat_memory_while_others_are_served(server):
    pid = server.process.pid
    get(server, "/big.bin")  # warm up code paths so the baseline is honest
    before = proc_status(pid, "VmHWM")
    fds_before = open_fds(pid)

    transfer = RawGet(server.ports[0], "/huge.img")
    assert transfer.head.startswith(b"HTTP/1.1 200")
    assert transfer.header("Content-Length") == str(GIB)
    transfer.read(limit=8 << 20)  # then stall: the server must pause, not buffer

    for _ in range(5):  # other requests are answered meanwhile
        response, body = get(server, "/hello.txt")
        assert (response.status, body) == (200, HELLO)
    response, body = get(server, "/sub/", {"Accept": "application/json"})
    assert response.status == 200

    assert transfer.read() == GIB
    assert transfer.sample == bytes(64)  # a sparse file reads as zeros
    transfer.close()

    grown_kb = proc_status(pid, "VmHWM") - before
    assert grown_kb < 100 * 1024, f"peak RSS grew by {grown_kb} kB serving 1 GiB"
    assert wait_for_fds(pid, fds_before) <= fds_before


def test_head_and_tail_range_of_a_huge_file(server):
    response, body = get(server, "/huge.img", method="HEAD")
    assert (response.getheader("Content-Length"), body) == (str(GIB), b"")
    response, body = get(server, "/huge.img", {"Range": "bytes=-10"})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes {GIB - 10}-{GIB - 1}/{GIB}"
    assert body == bytes(10)


def test_client_leaving_mid_transfer_releases_the_file(server):
    pid = server.process.pid
    get(server, "/hello.txt")
    fds_before = open_fds(pid)
    for _ in range(3):
        transfer = RawGet(server.ports[0], "/huge.img")
        transfer.read(limit=2 << 20)
        transfer.close()
    assert wait_for_fds(pid, fds_before) <= fds_before
    response, body = get(server, "/hello.txt")
    assert (response.status, body) == (200, HELLO)


def test_a_file_cut_short_mid_sendfile_ends_the_connection(tmp_path: Path) -> None:
    """The file shrinks while its body goes out by ``os.sendfile`` (a slow reader
    keeps the sender waiting): the promised length can no longer be met, so the
    connection is closed (the client sees a short body, never bytes that are not the
    file's), and the server goes on serving."""
    site = tmp_path / "site"
    site.mkdir()
    data = os.urandom(16 << 20)
    (site / "big.bin").write_bytes(data)
    port = free_port()
    config = simple_config(port, [{"handle": [{"handler": "file_server", "root": str(site)}]}])
    with running_server(config, tmp_path, [port]):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            received = client.recv(65536)
            os.truncate(site / "big.bin", 1 << 20)
            try:
                while chunk := client.recv(1 << 20):
                    received += chunk
            except ConnectionResetError:
                pass  # an aborted connection: closed either way
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"content-length: %d" % len(data) in head.lower()
        assert len(body) < len(data)
        assert body == data[: len(body)]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        connection.request("GET", "/big.bin")
        assert connection.getresponse().read() == data[: 1 << 20]
        connection.close()
