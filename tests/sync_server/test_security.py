"""Hostile paths, symlinks, auth and the open-only-on-loopback rule, on a real server."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from caddytw.config.errors import ConfigError
from caddytw.sync.access import AccessPolicy, SyncClient, all_loopback, parse_clients
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, WebSocket, folder_view, q, sync_route, wait_until_open

HOSTILE = [
    "",
    "/",
    "/etc/passwd",
    "//etc/passwd",
    "..",
    "../",
    "../x",
    "../../etc/passwd",
    "a/../../x",
    "a/../b",
    "./a",
    "a/./b",
    ".",
    "a/.",
    "a/..",
    "a//b",
    "a/",
    "/a",
    "a\\b",
    "..\\x",
    "..\\..\\windows\\win.ini",
    "C:\\x",
    "\\\\server\\share",
    "a\x00b",
    "\x00",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x1bb",
    "a\x7fb",
    ".caddytw-sync",
    ".caddytw-sync/index.db",
    ".caddytw-sync/index.db-wal",
    "x/.caddytw-sync/y",
    ".a.txt.0123456789abcdef.tmp",
    "d/.f.0123456789abcdef.tmp",
    "x" * 256,
    "a/" + "b" * 300,
    "/".join(["d"] * 2100),
    "..%2f..%2fetc",  # decodes once: a legal name with literal %2f
    "link/escape.txt",
    "link/../x",
    "link",
    "filelink",
    "a/\x00/b",
    "..\x00",
    " /../x",
    "../" * 20 + "etc/passwd",
    "a/b/../../../c",
    "\u2024\u2024/x",  # one-dot leaders: a legal name
    "\ud800",
    "dir/\\..\\..",
    "%2e%2e/x",
    "a/b/..",
    "...//x",
    "/..",
    "a\u0000",
    "x/\u0085/../..",
    "link/sub/new.txt",
    ".caddytw-sync/../x",
    "dir/.g.fedcba9876543210.tmp",
]
# Entries that are legitimate names once decoded (kept to prove they stay inside root).
INSIDE_OK = {"..%2f..%2fetc", "\u2024\u2024/x", "%2e%2e/x"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sync-security")
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = workdir / "data"
    root.mkdir()
    (root / "link").symlink_to(outside)
    (root / "filelink").symlink_to(outside / "secret.txt")
    port = free_port()
    config = simple_config(port, sync_route(root, enable_upload=True))
    with running_server(config, workdir, [port]) as srv:
        wait_until_open(port)
        srv.root = root
        srv.outside = outside
        yield srv


def encode(path: str) -> str:
    """Percent-encode the path's UTF-8 bytes (lone surrogates as their raw bytes)."""
    return quote(path.encode("utf-8", "surrogatepass"), safe="")


def test_corpus_is_large_enough():
    assert len([p for p in HOSTILE if p not in INSIDE_OK]) >= 50


def test_hostile_paths_are_refused(server):
    api = Api(server.ports[0])
    before = folder_view(server.root)
    outside_before = sorted(p.name for p in server.outside.iterdir())
    for path in HOSTILE:
        if path in INSIDE_OK:
            continue
        target = encode(path)
        for reply in (
            api.call("POST", f"upload?path={target}", b"pwned"),
            api.call("GET", f"download?path={target}"),
            api.call("GET", f"metadata?path={target}"),
            api.call("DELETE", f"file?path={target}"),
            api.sync([{"Delete": {"path": path}}]) if "\ud800" not in path else None,
            api.sync([{"Move": {"from": "moved-src", "to": path}}])
            if "\ud800" not in path
            else None,
        ):
            if reply is None:
                continue
            if reply.status == 200 and reply.body.startswith(b'{"operations"'):
                result = reply.json()["results"][0]
                assert result["status"] == "error", (path, reply)
                continue
            assert 400 <= reply.status < 500, (path, reply)
            assert b"secret" not in reply.body
    assert folder_view(server.root) == before
    assert sorted(p.name for p in server.outside.iterdir()) == outside_before
    assert (server.outside / "secret.txt").read_text() == "secret"
    api.close()


def test_odd_but_legal_names_stay_inside(server):
    api = Api(server.ports[0])
    for path in INSIDE_OK:
        reply = api.upload(path, b"ok")
        assert reply.status == 201, (path, reply)
        assert (server.root / path).resolve().is_relative_to(server.root.resolve())
        assert api.call("DELETE", f"file?path={q(path)}").status == 200
    api.close()


def test_symlinks_are_not_listed(server):
    listing = Api(server.ports[0]).listing()
    assert "link" not in listing and "filelink" not in listing


def test_bearer_tokens(tmp_path):
    port = free_port()
    clients = [
        {"id": "laptop", "token": "t" * 32},
        {"id": "viewer", "token": "v" * 32, "read_only": True},
    ]
    route = sync_route(tmp_path / "data", enable_upload=True, clients=clients)
    with running_server(simple_config(port, route), tmp_path, [port]) as srv:
        anonymous = Api(port)
        denied = anonymous.call("GET", "list")
        assert denied.status == 401
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert Api(port, token="wrong" * 8).call("GET", "list").status == 401
        assert anonymous.call("GET", "list", headers={"Authorization": "Basic abc"}).status == 401
        assert WebSocket(port).status == 401

        viewer = Api(port, token="v" * 32)
        assert viewer.call("GET", "list").status == 200
        assert viewer.upload("x.txt", b"x").status == 403
        assert viewer.sync([{"Delete": {"path": "x.txt"}}]).status == 403

        assert anonymous.call("GET", "whoami").status == 401
        assert viewer.call("GET", "whoami").json() == {
            "client_id": "viewer",
            "read_only": True,
            "upload_enabled": True,
            "can_write": False,
        }

        laptop = Api(port, token="t" * 32)
        assert laptop.call("GET", "whoami").json()["can_write"] is True
        assert laptop.upload("x.txt", b"x").status == 201
        page = laptop.call("GET", "list?since=0").json()
        assert [c["origin"] for c in page["changes"]] == ["laptop"]
        ws = WebSocket(port, token="t" * 32)
        assert ws.accepted
        ws.close()
        assert "2 client(s) with bearer tokens" in srv.log()


def bearer_protocol(token: str) -> str:
    return "caddytw.bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def test_websocket_token_as_subprotocol(tmp_path):
    """A browser cannot set Authorization on a WebSocket: it offers the token as a
    subprotocol; the server picks caddytw.events and never echoes the token back."""
    port = free_port()
    token = "p+/" * 8  # base64url needs to differ from base64 here
    clients = [{"id": "browser", "token": token}, {"id": "viewer", "token": "v" * 32}]
    route = sync_route(tmp_path / "data", enable_upload=True, clients=clients)
    with running_server(simple_config(port, route), tmp_path, [port]):
        ws = WebSocket(port, protocols=["caddytw.events", bearer_protocol(token)])
        assert ws.accepted, ws.head
        assert "sec-websocket-protocol: caddytw.events\r\n" in ws.head.lower()
        assert "bearer" not in ws.head.lower()
        Api(port, token=token).upload("pushed.txt", b"x")
        assert ws.message()["path"] == "pushed.txt"
        ws.close()
        read_only = WebSocket(port, protocols=["caddytw.events", bearer_protocol("v" * 32)])
        assert read_only.accepted
        read_only.close()
        for offered in (
            ["caddytw.events", bearer_protocol("w" * 32)],  # unknown token
            ["caddytw.events", "caddytw.bearer.!!"],  # not base64url
            ["caddytw.events"],
        ):
            assert WebSocket(port, protocols=offered).status == 401, offered
        # only on an upgrade: a plain request cannot use the subprotocol header
        plain = Api(port).call(
            "GET", "list", headers={"Sec-WebSocket-Protocol": bearer_protocol(token)}
        )
        assert plain.status == 401


def test_parse_clients_errors():
    with pytest.raises(ConfigError, match="at least 16"):
        parse_clients([{"id": "a", "token": "short"}], "clients")
    with pytest.raises(ConfigError, match="duplicate client id"):
        parse_clients([{"id": "a", "token": "x" * 16}, {"id": "a", "token": "y" * 16}], "c")
    with pytest.raises(ConfigError, match=r"c\[0\]\.bogus"):
        parse_clients([{"id": "a", "token": "x" * 16, "bogus": 1}], "c")


def test_loopback_rule():
    assert all_loopback(["127.0.0.1:8080", "[::1]:80", "localhost:1"])
    assert not all_loopback([":8080"])
    assert not all_loopback(["0.0.0.0:80", "127.0.0.1:81"])

    class Peer:
        def __init__(self, host):
            self.host = host

    class Request:
        method = b"GET"

        def __init__(self, host):
            self.peer = Peer(host)

        def getClientAddress(self):
            return self.peer

        def getHeader(self, name):
            return b"localhost" if name == b"host" else None

    policy = AccessPolicy([])
    assert policy.authenticate(Request("127.0.0.1")) is None
    assert policy.authenticate(Request("::ffff:127.0.0.1")) is None
    with pytest.raises(Exception, match="only loopback"):
        policy.authenticate(Request("192.0.2.7"))
    AccessPolicy.check_write(SyncClient("a", "x" * 16))
    with pytest.raises(Exception, match="read-only"):
        AccessPolicy.check_write(SyncClient("a", "x" * 16, read_only=True))
