"""Large bodies through ``os.sendfile`` on a real socket, keep-alive afterwards."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import server_env

HERE = Path(__file__).parent


@pytest.mark.parametrize("size", [10, 3 << 20])
def test_sendfile_serves_a_file_and_keeps_the_connection(tmp_path: Path, size: int) -> None:
    """A small file leaves in the turn that starts it (the head goes straight to the
    socket, the first ``os.sendfile`` follows at once and finishes the body); a large
    one needs many turns. Either way the connection serves the next request."""
    data = os.urandom(size) + b"tail"
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    process = subprocess.Popen(
        [sys.executable, str(HERE / "sendfile_server.py"), str(path)],
        stdout=subprocess.PIPE,
        env=server_env(),
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        for _ in range(2):  # the second request reuses the connection
            connection.request("GET", "/x")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.getheader("content-length") == str(len(data))
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        connection.request("HEAD", "/x")
        head = connection.getresponse()
        assert head.read() == b""
        assert head.getheader("content-length") == str(len(data))
        # The socket was corked for the file (full segments) and is released after it:
        # a later small answer on the connection is not held back.
        connection.request("GET", "/cork")
        assert connection.getresponse().read() == b"0"
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
