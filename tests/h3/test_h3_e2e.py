"""HTTP/3 end to end: a real server process, a real aioquic client process."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from tests.h3.h3client import pattern

BLOB = 50 * 1024 * 1024

ROUTES: list[Any] = [
    {"match": [{"path": ["/big"]}], "handle": [{"handler": "h3test_blob", "size": BLOB}]},
    {
        "match": [{"path": ["/big-pull"]}],
        "handle": [{"handler": "h3test_blob", "size": 3 * 1024 * 1024, "mode": "pull"}],
    },
    {
        "match": [{"path": ["/later"]}],
        "handle": [{"handler": "h3test_blob", "size": 200000, "delay": 0.3}],
    },
    {"match": [{"path": ["/echo"]}], "handle": [{"handler": "h3test_echo"}]},
    {
        "match": [{"path": ["/length"]}],
        "handle": [{"handler": "static_response", "body": "{http.request.header.content-length}"}],
    },
    {
        "match": [{"protocol": "http/3"}],
        "handle": [
            {
                "handler": "static_response",
                "headers": {"X-Matched": ["h3"]},
                "body": "proto={http.request.proto} host={http.request.host}",
            }
        ],
    },
    {"handle": [{"handler": "static_response", "body": "proto={http.request.proto}"}]},
]


@pytest.fixture
def server(h3_server_factory: Any) -> Any:
    return h3_server_factory(ROUTES)


def only(result: dict[str, Any]) -> list[dict[str, Any]]:
    [connection] = result["connections"]
    assert isinstance(connection, list), connection
    return connection


def test_get_head_post_and_placeholders(server: Any) -> None:
    get, head, post, length, later = only(
        server.client(
            {
                "connections": [
                    [
                        {"path": "/"},
                        {"method": "HEAD", "path": "/"},
                        {"method": "POST", "path": "/echo", "body_size": 333333},
                        {"method": "POST", "path": "/length", "body": "twelve bytes"},
                        {"path": "/later"},
                    ]
                ]
            }
        )
    )
    assert get["status"] == 200
    assert get["body"] == "proto=HTTP/3.0 host=localhost"
    assert get["headers"]["x-matched"] == ["h3"]  # the protocol matcher saw http/3
    assert get["headers"]["server"] == ["Caddy"]
    assert "alt-svc" not in get["headers"]  # no advertisement over h3 itself
    assert all(name == name.lower() for name in get["headers"])
    assert "transfer-encoding" not in get["headers"]

    assert head["status"] == 200
    assert head["length"] == 0
    assert head["headers"]["content-length"] == [str(len(get["body"]))]

    echoed = json.loads(post["body"])
    assert echoed["method"] == "POST"
    assert echoed["proto"] == "HTTP/3.0"
    assert echoed["length"] == 333333
    assert echoed["sha256"] == hashlib.sha256(pattern(333333)).hexdigest()

    assert length["body"] == "12"

    # Written from a timer, after the request's datagrams were long handled.
    assert later["status"] == 200
    assert later["sha256"] == hashlib.sha256(pattern(200000)).hexdigest()


def test_large_downloads_byte_for_byte(server: Any) -> None:
    push, pull = only(
        server.client(
            {"connections": [[{"path": "/big"}, {"path": "/big-pull"}]], "timeout": 80},
            timeout=90,
        )
    )
    assert push["status"] == 200
    assert push["length"] == BLOB
    assert push["sha256"] == hashlib.sha256(pattern(BLOB)).hexdigest()
    assert pull["length"] == 3 * 1024 * 1024
    assert pull["sha256"] == hashlib.sha256(pattern(3 * 1024 * 1024)).hexdigest()
    assert server.stats()["h3"][0]["streams"] == 0


def test_hundred_concurrent_streams_on_one_connection(server: Any) -> None:
    requests = [{"path": f"/n{i}?i={i}"} for i in range(100)]
    results = only(server.client({"connections": [requests]}))
    assert len(results) == 100
    assert {r["status"] for r in results} == {200}
    assert {r["body"] for r in results} == {"proto=HTTP/3.0 host=localhost"}


def test_many_connections(server: Any) -> None:
    result = server.client({"connections": [[{"path": "/"}, {"path": "/x"}] for _ in range(50)]})
    assert len(result["connections"]) == 50
    for connection in result["connections"]:
        assert isinstance(connection, list), connection
        assert [r["status"] for r in connection] == [200, 200]
    stats = wait_for(server, lambda s: s["connections"] == 0)
    state = ("connections", "routes", "timers", "streams", "pending_hellos")
    assert {key: stats[key] for key in state} == dict.fromkeys(state, 0)


def test_vanished_client_is_forgotten_after_idle_timeout(h3_server_factory: Any) -> None:
    server = h3_server_factory(ROUTES, idle_timeout="2s")
    out = server.client({"connections": [[{"path": "/big"}]], "vanish": True})
    assert out == {"vanished": True}
    during = server.stats()
    assert during["h3"][0]["connections"] == 1
    assert during["h3"][0]["routes"] >= 2
    assert during["h3"][0]["timers"] >= 1
    after = wait_for(server, lambda s: s["connections"] == 0, timeout=20)
    assert after["routes"] == 0
    assert after["timers"] == 0
    assert after["streams"] == 0
    leftover = [c for c in server.stats()["delayed_calls"] if "caddytw" in c or "tests.h3" in c]
    assert leftover == []


def test_alt_svc_on_http1_and_http2(server: Any) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{server.port}/"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        assert response.read() == b"proto=HTTP/1.1"
        assert response.headers["Alt-Svc"] == f'h3=":{server.port}"; ma=2592000'
    # HTTP/2 through curl (ALPN h2), then the advertised h3 port answers HTTP/3.
    done = subprocess.run(
        ["curl", "-sk", "--http2", "-D", "-", url], capture_output=True, timeout=20
    )
    text = done.stdout.decode()
    assert text.startswith("HTTP/2 200"), text
    assert f'alt-svc: h3=":{server.port}"; ma=2592000' in text.lower()
    assert text.endswith("proto=HTTP/2.0")
    [follow] = only(server.client({"connections": [[{"path": "/"}]]}))
    assert follow["body"].startswith("proto=HTTP/3.0")


def test_retry_tokens(h3_server_factory: Any) -> None:
    server = h3_server_factory(ROUTES, retry=True)
    [result] = only(server.client({"connections": [[{"path": "/"}]]}))
    assert result["status"] == 200
    assert result["body"] == "proto=HTTP/3.0 host=localhost"
    assert server.stats()["h3"][0]["retries"] == 1


def test_version_negotiation_and_short_initials(server: Any) -> None:
    from aioquic.buffer import Buffer
    from aioquic.quic.packet import QuicPacketType, pull_quic_header

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        # Long header, unknown version 0x0a0a0a0a, DCID 8 bytes, SCID 4 bytes.
        probe = bytes([0xC0]) + bytes.fromhex("0a0a0a0a") + b"\x08" + b"D" * 8 + b"\x04SCID"
        sock.sendto(probe + bytes(1200 - len(probe) - 1) + b"\x00", ("127.0.0.1", server.port))
        reply, _ = sock.recvfrom(2048)
        header = pull_quic_header(Buffer(data=reply), host_cid_length=8)
        assert header.packet_type == QuicPacketType.VERSION_NEGOTIATION
        assert header.destination_cid == b"SCID"
        assert header.source_cid == b"D" * 8
        assert 0x00000001 in header.supported_versions
        # A version-1 INITIAL below 1200 bytes creates nothing and gets no answer.
        short = bytes([0xC0]) + (1).to_bytes(4, "big") + b"\x08" + b"E" * 8 + b"\x00\x00\x05"
        sock.sendto(short + b"\x00" * 5, ("127.0.0.1", server.port))
        with pytest.raises(socket.timeout):
            sock.settimeout(0.5)
            sock.recvfrom(2048)
    stats = server.stats()["h3"][0]
    assert stats["version_negotiations"] == 1
    assert stats["refused"] == 1
    assert stats["connections"] == 0


def wait_for(server: Any, ready: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()["h3"][0]
        if ready(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)
