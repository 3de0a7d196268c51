"""Request bodies through ``reverse_proxy`` after an earlier exchange, so over a reused
upstream keep-alive connection, against a real upstream process: every body path of the
lean client (a streamed body with a known length, a chunked one collected first, an
Upgrade request's body on its own connection, and a retry onto a pooled connection)."""

from __future__ import annotations

import hashlib
import json
import socket

from tests.proxy.harness import Client, port_of, proxy, proxy_route, read_head, upstreams
from tests.proxy.test_faults import dead_dial, round_robin


def exchange(sock: socket.socket, raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """Send one request, read one Content-Length-framed answer off a kept connection."""
    sock.sendall(raw)
    head, rest = read_head(sock)
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    size = int(fields.get("content-length", "0"))
    while len(rest) < size:
        chunk = sock.recv(65536)
        assert chunk, rest
        rest += chunk
    return lines[0].encode(), fields, rest


def chunked(body: bytes, piece: int = 1000) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
        for i in range(0, len(body), piece)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def check_echo(status: bytes, body: bytes, sent: bytes) -> None:
    assert status.startswith(b"HTTP/1.1 200"), (status, body)
    echoed = json.loads(body)
    assert echoed["body_len"] == len(sent)
    assert echoed["body_sha256"] == hashlib.sha256(sent).hexdigest()


def test_post_after_get_on_a_reused_upstream_connection(tmp_path):
    with upstreams("a") as ups, proxy(tmp_path, proxy_route(ups)) as server:
        client = Client(port_of(server))
        try:
            for size in (5, 70_000, 1, 300_000):
                assert client.request("GET", "/first").status == 200
                body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                reply = client.request("POST", "/upload", body=body)
                assert reply.status == 200, reply.body
                assert reply.json()["body_len"] == size
                assert reply.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
        finally:
            client.close()


def test_chunked_and_upgrade_bodies_after_a_get(tmp_path):
    with upstreams("a") as ups, proxy(tmp_path, proxy_route(ups)) as server:
        sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=15)
        with sock:
            for body in (b"hello", b"y" * 200_000):
                status, _, _ = exchange(sock, b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
                assert status.startswith(b"HTTP/1.1 200")
                status, _, answer = exchange(
                    sock,
                    b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunked(body),
                )
                check_echo(status, answer, body)
            # An Upgrade the upstream does not take, with a body: an ordinary answer
            # that saw the whole body, and the client connection stays usable.
            status, _, answer = exchange(
                sock,
                b"POST /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\n"
                b"Connection: Upgrade\r\nContent-Length: 5\r\n\r\nhello",
            )
            check_echo(status, answer, b"hello")
            status, _, answer = exchange(
                sock, b"POST /after HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            )
            check_echo(status, answer, b"abc")


def test_retried_bodies_land_on_a_pooled_connection(tmp_path):
    with upstreams("a") as (a,):
        route = [dead_dial(), a.dial]
        handler = proxy_route(route, load_balancing=round_robin(retries=1))
        with proxy(tmp_path, handler) as server:
            sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=15)
            with sock:
                for _ in range(3):  # every other request dials the dead one first
                    status, _, answer = exchange(
                        sock, b"POST /l HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                    )
                    check_echo(status, answer, b"body")
                    status, _, answer = exchange(
                        sock,
                        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + chunked(b"z" * 5000),
                    )
                    check_echo(status, answer, b"z" * 5000)
