"""Every handler family through a real ``twistd -n caddy`` process and real sockets."""

from __future__ import annotations

import base64
import gzip
import http.client
import select
import socket

import bcrypt
import pytest
import zstandard

from tests.handlers.helpers import chain, echo
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config

FAST_HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
SLOW_HASH = bcrypt.hashpw(b"slow", bcrypt.gensalt(12)).decode()  # a few hundred ms
BIG = "caddytw " * 2000


def route(prefix, *handlers):
    return chain(*handlers, match=[{"path": [prefix + "*"]}], terminal=True)


ROUTES = [
    route(
        "/headers/",
        {
            "handler": "headers",
            "request": {"set": {"X-In": ["from-headers"]}},
            "response": {
                "deferred": True,
                "delete": ["Server"],
                "set": {"X-Out": ["{http.request.uri.path}"]},
            },
        },
        echo("{http.request.header.X-In}"),
    ),
    route(
        "/rewrite/",
        {"handler": "rewrite", "strip_path_prefix": "/rewrite"},
        {
            "handler": "rewrite",
            "uri": "/new{http.request.uri.path}?{http.request.uri.query}&added=1",
        },
        echo("{http.request.uri}"),
    ),
    route("/upload", {"handler": "request_body", "max_size": 1000}, echo("stored")),
    route("/encode/", {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}}}, echo(BIG)),
    route(
        "/auth/",
        {
            "handler": "authentication",
            "providers": {
                "http_basic": {
                    "accounts": [
                        {"username": "bob", "password": FAST_HASH},
                        {"username": "slow", "password": SLOW_HASH},
                    ]
                }
            },
        },
        echo("hello {http.auth.user.id}"),
    ),
    route(
        "/map/",
        {
            "handler": "map",
            "source": "{http.request.uri.path}",
            "destinations": ["{color}"],
            "mappings": [{"input_regexp": "^/map/(\\w+)$", "outputs": ["color-$1"]}],
            "defaults": ["none"],
        },
        echo("{color}"),
    ),
    route("/fail", {"handler": "error", "error": "on purpose", "status_code": 418}),
]
ERRORS = {"routes": [chain(echo("handled {http.error.status_code}: {http.error.message}"))]}


FILE_TEXT = b"".join(b"line %d of a file served through encode\n" % i for i in range(60_000))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    files = tmp_path_factory.mktemp("files")
    (files / "big.txt").write_bytes(FILE_TEXT)
    routes = [
        *ROUTES,
        route(
            "/files/",
            {"handler": "rewrite", "strip_path_prefix": "/files"},
            {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}}},
            {"handler": "file_server", "root": str(files)},
        ),
    ]
    config = simple_config(port, routes, errors=ERRORS)
    with running_server(config, tmp_path_factory.mktemp("handlers"), [port]) as process:
        yield process


def fetch(server, method, path, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.ports[0], timeout=20)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_headers(server):
    status, headers, body = fetch(server, "GET", "/headers/x")
    assert (status, body) == (200, b"from-headers")
    assert headers.get("x-out") == "/headers/x"
    assert "server" not in headers


def test_rewrite(server):
    status, _, body = fetch(server, "GET", "/rewrite/a%20b?q=1")
    assert (status, body) == (200, b"/new/a%20b?q=1&added=1")


def test_request_body(server):
    assert fetch(server, "POST", "/upload", body=b"x" * 1000)[0] == 200
    status, _, body = fetch(server, "POST", "/upload", body=b"x" * 1001)
    assert (status, body) == (413, b"handled 413: http: request body too large")


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_encode(server, coding):
    status, headers, body = fetch(server, "GET", "/encode/", {"Accept-Encoding": coding})
    assert status == 200
    assert headers["content-encoding"] == coding
    assert headers["vary"] == "Accept-Encoding"
    if coding == "gzip":
        assert gzip.decompress(body) == BIG.encode()
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == BIG.encode()
    plain = fetch(server, "GET", "/encode/")
    assert plain[2] == BIG.encode()
    assert "content-encoding" not in plain[1]


def test_authentication(server):
    status, headers, _ = fetch(server, "GET", "/auth/")
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="restricted"'
    assert fetch(server, "GET", "/auth/", basic("bob", "secret"))[2] == b"hello bob"
    assert fetch(server, "GET", "/auth/", basic("bob", "wrong"))[0] == 401
    # Twice: the second answer comes from the remembered success.
    assert fetch(server, "GET", "/auth/", basic("bob", "secret"))[2] == b"hello bob"


def test_slow_password_check_does_not_block_other_requests(server):
    slow = socket.create_connection(("127.0.0.1", server.ports[0]), timeout=20)
    try:
        token = base64.b64encode(b"slow:slow").decode()
        slow.sendall(
            f"GET /auth/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        # While bcrypt (cost 12) runs in a thread, another request is answered.
        assert fetch(server, "GET", "/headers/y")[0] == 200
        readable, _, _ = select.select([slow], [], [], 0)
        assert not readable, "the slow check finished first: was it run on the reactor?"
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
    finally:
        slow.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"hello slow")


def test_map(server):
    assert fetch(server, "GET", "/map/red")[2] == b"color-red"
    assert fetch(server, "GET", "/map/a/b")[2] == b"none"


def test_error_routes(server):
    status, _, body = fetch(server, "GET", "/fail")
    assert (status, body) == (418, b"handled 418: on purpose")


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_encode_streams_a_file_from_file_server(server, coding):
    status, headers, body = fetch(server, "GET", "/files/big.txt", {"Accept-Encoding": coding})
    assert status == 200
    assert headers["content-encoding"] == coding
    assert headers.get("transfer-encoding") == "chunked"  # streamed, not buffered
    assert "content-length" not in headers
    assert "accept-ranges" not in headers
    assert headers["etag"].endswith(f'-{coding}"')
    decoder = (
        gzip.decompress
        if coding == "gzip"
        else zstandard.ZstdDecompressor().decompressobj().decompress
    )
    assert decoder(body) == FILE_TEXT


def test_ranges_of_a_file_are_not_encoded(server):
    status, headers, body = fetch(
        server, "GET", "/files/big.txt", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"}
    )
    assert (status, body) == (206, FILE_TEXT[:10])
    assert "content-encoding" not in headers


def test_encoded_etag_revalidates_against_file_server(server):
    _, headers, _ = fetch(server, "GET", "/files/big.txt", {"Accept-Encoding": "gzip"})
    status, again, body = fetch(
        server,
        "GET",
        "/files/big.txt",
        {"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]},
    )
    assert (status, body) == (304, b"")
    assert again.get("vary") == "Accept-Encoding"
