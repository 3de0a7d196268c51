"""Without tokens the API is for this machine only (issue 12, findings 3 and 4); with
tokens the client is the token's id (finding 7). Real ``twistd`` processes."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from caddytw.sync.index import MAX_CLIENTS, SyncIndex
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, WebSocket, sync_route


def raw(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, Any]:
    """One request with exactly these headers (http.client adds Host unless given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.putrequest(method, target, skip_host="Host" in headers)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("open")
    port, proxy_port = free_port(), free_port()
    root = tmp_path / "data"
    root.mkdir()
    (root / "keep.txt").write_bytes(b"must survive")
    config = simple_config(port, sync_route(root, enable_upload=True))
    # A reverse proxy on the same machine in front of the loopback API.
    config["apps"]["http"]["servers"]["proxy"] = {
        "listen": [f"127.0.0.1:{proxy_port}"],
        "routes": [
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{port}"}]}]}
        ],
    }
    with running_server(config, tmp_path, [port, proxy_port]) as srv:
        srv.root = root
        srv.proxy_port = proxy_port
        yield srv


def test_foreign_host_is_refused(open_server) -> None:
    port = open_server.ports[0]
    status, body = raw(port, "GET", "/api/list", {"Host": "evil.example"})
    assert status == 403 and "Host" in body["error"]
    status, body = raw(port, "GET", "/api/list", {"Host": "127.0.0.1.evil.example"})
    assert status == 403
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "127.1.2.3", "[::1]:80"):
        status, body = raw(port, "GET", "/api/list", {"Host": host})
        assert status == 200, (host, body)


def test_foreign_origin_is_refused(open_server) -> None:
    port = open_server.ports[0]
    status, body = raw(port, "GET", "/api/list", {"Origin": "https://evil.example"})
    assert status == 403 and "Origin" in body["error"]
    status, _ = raw(port, "GET", "/api/list", {"Origin": "null"})
    assert status == 403
    status, _ = raw(port, "GET", "/api/list", {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200


@pytest.mark.parametrize(
    "header", ["Forwarded: for=1.2.3.4", "X-Forwarded-For: 1.2.3.4", "X-Real-IP: 1.2.3.4"]
)
def test_proxy_headers_are_refused(open_server, header: str) -> None:
    name, _, value = header.partition(": ")
    status, body = raw(open_server.ports[0], "GET", "/api/list", {name: value})
    assert status == 403 and "proxy" in body["error"]


def test_a_reverse_proxy_in_front_does_not_open_the_api(open_server) -> None:
    # (The upload goes first: on main, reverse_proxy answers 500 to a streamed body sent
    # over a reused upstream connection, lean.py's startProducing returning None.)
    status, _ = raw(
        open_server.proxy_port,
        "POST",
        "/api/upload?path=via-proxy.txt",
        {"X-Requested-With": "x", "Content-Type": "application/octet-stream"},
        b"from the world",
    )
    assert status == 403
    assert not (open_server.root / "via-proxy.txt").exists()
    status, body = raw(open_server.proxy_port, "GET", "/api/list", {})
    assert status == 403, body


def test_simple_cross_site_requests_cannot_change_anything(open_server) -> None:
    port = open_server.ports[0]
    delete = json.dumps(
        {"operations": [{"Delete": {"path": "keep.txt"}}], "client_id": "page"}
    ).encode()
    status, body = raw(port, "POST", "/api/sync", {"Content-Type": "text/plain"}, delete)
    assert status == 403 and "application/json" in body["error"]
    status, _ = raw(port, "POST", "/api/upload?path=form.txt", {}, b"form")
    assert status == 403
    status, _ = raw(
        port, "POST", "/api/upload?path=form.txt", {"Content-Type": "text/plain"}, b"form"
    )
    assert status == 403
    status, _ = raw(port, "DELETE", "/api/file?path=keep.txt", {})
    assert status == 403
    assert (open_server.root / "keep.txt").read_bytes() == b"must survive"
    assert not (open_server.root / "form.txt").exists()
    # what local programs send still works
    status, _ = raw(
        port, "POST", "/api/upload?path=ok.txt", {"X-Sync-Client": "synclient"}, b"fine"
    )
    assert status == 201
    status, _ = raw(port, "POST", "/api/upload?path=ok2.txt", {"X-Requested-With": "x"}, b"2")
    assert status == 201
    nothing = json.dumps({"operations": [], "client_id": "me"}).encode()
    status, _ = raw(
        port, "POST", "/api/sync", {"Content-Type": "application/json; charset=utf-8"}, nothing
    )
    assert status == 200


def test_websocket_checks_origin(open_server) -> None:
    port = open_server.ports[0]
    foreign = WebSocket(port, origin="https://evil.example")
    assert foreign.status == 403 and not foreign.accepted
    foreign.close()
    own = WebSocket(port, origin=f"http://127.0.0.1:{port}")
    assert own.accepted
    own.close()


TOKEN = "a-long-enough-secret-token"
READER = "another-long-enough-token"


def test_with_tokens_the_client_is_the_token(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "data"
    root.mkdir()
    clients = [
        {"id": "laptop", "token": TOKEN},
        {"id": "viewer", "token": READER, "read_only": True},
    ]
    config = simple_config(port, sync_route(root, enable_upload=True, clients=clients))
    with running_server(config, tmp_path, [port]):
        viewer = Api(port, token=READER)
        reply = viewer.sync([], client_id="laptop")  # consume the writer's changes?
        assert reply.status == 403, reply
        assert "laptop" in reply.json()["error"]
        reply = viewer.sync([], client_id="viewer")
        assert reply.status == 200 and reply.headers["x-sync-client"] == "viewer"
        writer = Api(port, token=TOKEN)
        assert writer.call("GET", "list").headers["x-sync-client"] == "laptop"
        viewer.close()
        writer.close()


def test_clients_table_is_bounded(tmp_path: Path) -> None:
    index = SyncIndex(tmp_path / "index.db")
    try:
        with index.transaction():
            for number in range(MAX_CLIENTS + 50):
                index.set_client_cursor(f"client-{number}", number)
        count = index.db.execute("SELECT count(*) FROM clients").fetchone()[0]
        assert count == MAX_CLIENTS
        assert index.client_cursor(f"client-{MAX_CLIENTS + 49}") == MAX_CLIENTS + 49
        assert index.client_cursor("client-0") is None
    finally:
        index.close()
