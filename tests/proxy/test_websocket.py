"""Upgrade requests tunnelled through a real caddytw process to a real upstream."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time

from tests.proxy.harness import (
    get,
    open_fds,
    port_of,
    proxy,
    proxy_route,
    read_head,
    upstreams,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def handshake(port: int, early: bytes = b"") -> tuple[socket.socket, bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n" + early
    )
    head, rest = read_head(sock)
    return sock, head, key, rest


def read_exactly(sock: socket.socket, size: int, have: bytes = b"") -> bytes:
    while len(have) < size:
        chunk = sock.recv(65536)
        assert chunk
        have += chunk
    return have


def test_websocket_tunnel_both_ways_and_clean_close(tmp_path):
    with upstreams("ws") as (ws,), proxy(tmp_path, proxy_route([ws])) as server:
        port, pid = port_of(server), server.process.pid
        get(port)
        before = open_fds(pid)

        # Bytes sent right behind the request (before the 101) must not be lost.
        sock, head, key, rest = handshake(port, early=b"early!")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101")
        fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        assert fields["sec-websocket-accept"] == expected
        assert fields["upgrade"].lower() == "websocket"
        assert fields["connection"].lower() == "upgrade"
        assert fields["x-upstream"] == "ws"
        assert read_exactly(sock, 6, rest) == b"early!"
        payload = os.urandom(1 << 20)  # a megabyte each way exercises flow control
        sock.sendall(payload)
        assert read_exactly(sock, len(payload)) == payload

        # The client closes: the upstream connection goes too.
        sock.close()

        # The upstream closes: the client sees the end of the stream.
        sock, head, _, rest = handshake(port)
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(b"bye")
        assert sock.recv(10) == b""
        sock.close()

        deadline = time.monotonic() + 10
        while open_fds(pid) > before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds(pid) <= before


def test_upgrade_refused_by_upstream_is_an_ordinary_response(tmp_path):
    with upstreams("a") as (a,), proxy(tmp_path, proxy_route([a])) as server:
        sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=10)
        sock.sendall(
            b"GET /status?code=426 HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n"
            b"Connection: Upgrade\r\n\r\n"
        )
        data = b""
        while not data.endswith(b"status"):
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 426")
