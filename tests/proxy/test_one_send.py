"""A proxied answer leaves the server in one send: its head and its body together.

The answer comes from the upstream after the request was dispatched, so the HTTP/1.1
channel no longer holds the head for the body; the request hands both over at once
(``write_head``). Checked on the real server process with ``strace`` watching the
system calls that send: the bytes of the answer are one call's.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.proxy.harness import get, port_of, proxy, proxy_route, upstreams

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

#: ``sendto(12, ""..., 230, 0, NULL, 0) = 230`` and friends (``-s 0``: no data shown).
_SENT = re.compile(r"\b(?:sendto|sendmsg|write|writev)\(\d+,.*\)\s+=\s+(\d+)$")


def _answer(port: int, path: str) -> bytes:
    """One keep-alive GET on a raw socket; the answer's bytes (it has a length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head = data.partition(b"\r\n\r\n")[0]
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(data) < len(head) + 4 + length:
            data += sock.recv(65536)
        return data


def _traced_sends(pid: int, out: Path, port: int, path: str) -> tuple[bytes, list[int]]:
    """The answer to one request and the sizes every send of the server returned."""
    calls = "trace=sendto,sendmsg,write,writev"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-s", "0", "-e", calls, "-o", str(out), "-p", str(pid)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline and tracer.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)  # every thread attached
        if tracer.poll() is not None:
            pytest.skip(f"strace cannot attach here: {tracer.stderr.read()!r}")  # type: ignore[union-attr]
        answer = _answer(port, path)
        time.sleep(0.3)
    finally:
        tracer.terminate()
        tracer.wait(10)
    sizes = [int(m.group(1)) for m in map(_SENT.search, out.read_text().splitlines()) if m]
    return answer, sizes


def test_a_proxied_answer_is_one_send(tmp_path: Path) -> None:
    with upstreams("one") as (upstream,), proxy(tmp_path, proxy_route([upstream])) as server:
        port = port_of(server)
        assert get(port, "/warm").status == 200  # the upstream connection is pooled now
        answer, sizes = _traced_sends(server.process.pid, tmp_path / "trace", port, "/x")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b'"name": "one"' in body
    assert len(answer) in sizes, (len(answer), sizes)
    assert len(head) + 4 not in sizes, (len(head) + 4, sizes)
