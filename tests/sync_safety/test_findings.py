"""Issue 12, end to end: each reproduction as a test, with real ``twistd -n caddy`` and
real ``synclient`` processes, asserting the safe outcome of the issue's Deliver section.

Findings 1-8 are the numbered reproductions; the ``test_read_*`` tests are the items the
issue "found by reading". Every test here fails on main at 11046da, each for the reason
its assertion names; they pass once the sync-server, sync-client and wire-h1 fixes are
merged. The model of :mod:`tests.sync_safety.model` covers the same rules with random
sequences.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.ports import free_port
from tests.support.server import REPO, server_env
from tests.sync_safety.harness import (
    Client,
    SafetyServer,
    contents,
    run_ok,
    sha,
    snapshot,
    write,
)

pytestmark = pytest.mark.timeout(180)

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SafetyServer]:
    srv = SafetyServer(tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()


def call(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (``Host`` may be overridden in ``headers``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def q(path: str) -> str:
    return quote(path, safe="")


def upload(port: int, path: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """An upload as this machine's own tools send it (``X-Sync-Client`` is the custom
    header that tells the server it is not a cross-site form)."""
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Content-SHA256": sha(data),
        "X-Sync-Client": "tester",
    }
    return call(port, "POST", f"/api/upload?path={q(path)}", data, headers)


def sync_body(operations: list[Any], client_id: str = "tester") -> bytes:
    return json.dumps({"operations": operations, "client_id": client_id}).encode()


def assert_clean_log(server: SafetyServer) -> None:
    log = server.log()
    for word in ("Traceback", "RecursionError", "CRITICAL", "[critical]"):
        assert word not in log, log[-4000:]


# -- 1. an ignore rule deletes files on the server ---------------------------------------


def test_1_exclude_never_deletes_or_downloads(server: SafetyServer, tmp_path: Path) -> None:
    write(server.root, "keep.txt", b"keep")
    write(server.root, "debug.log", b"server log")
    write(server.root, "sub/trace.log", b"server trace")
    server.wait_indexed()
    before = contents(server.root)
    local = tmp_path / "a"
    local.mkdir()
    client = Client(server, local, "--exclude", "*.log")
    client.once()
    client.once()
    assert contents(server.root) == before, "an excluded path was changed on the server"
    assert not (local / "debug.log").exists() and not (local / "sub/trace.log").exists()
    assert (local / "keep.txt").read_bytes() == b"keep"


def test_1_rule_added_after_sync_leaves_both_sides(server: SafetyServer, tmp_path: Path) -> None:
    write(server.root, "notes.txt", b"notes")
    write(server.root, "app.log", b"server log")
    server.wait_indexed()
    local = tmp_path / "a"
    local.mkdir()
    run_ok(Client(server, local).once())
    assert (local / "app.log").read_bytes() == b"server log"
    ignoring = Client(server, local, "--exclude", "*.log")
    ignoring.once()
    ignoring.once()
    assert (server.root / "app.log").read_bytes() == b"server log"
    assert (local / "app.log").read_bytes() == b"server log"


def test_1_syncignore_is_local_and_never_synced(server: SafetyServer, tmp_path: Path) -> None:
    write(server.root, "build/out.bin", b"server build")
    write(server.root, "src.txt", b"source")
    server.wait_indexed()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write(a, ".syncignore", b"build/\n")
    Client(server, a).once()
    Client(server, a).once()
    assert (server.root / "build/out.bin").read_bytes() == b"server build"
    assert not (a / "build").exists()
    assert not (server.root / ".syncignore").exists(), ".syncignore was uploaded"
    run_ok(Client(server, b).once())
    assert not (b / ".syncignore").exists()
    assert (b / "build/out.bin").read_bytes() == b"server build"


# -- 2. an unmounted server disk empties the clients -------------------------------------


def _synced_pair(server: SafetyServer, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    for name in ("a.txt", "b.txt", "docs/c.txt"):
        write(server.root, name, name.encode())
    server.wait_indexed()
    local = tmp_path / "a"
    local.mkdir()
    client = Client(server, local)
    run_ok(client.once())
    files = contents(local)
    assert len(files) == 3
    return client, files


def _answers_503(server: SafetyServer) -> None:
    status, headers, body = call(server.port, "GET", "/api/list")
    assert status == 503, (status, body)
    assert headers.get("content-type", "").startswith("application/json")
    assert json.loads(body).get("error"), body


def test_2_missing_root_is_not_recreated_and_clients_keep_files(
    server: SafetyServer, tmp_path: Path
) -> None:
    client, files = _synced_pair(server, tmp_path)
    server.stop()
    away = tmp_path / "disk-not-mounted"
    shutil.move(server.root, away)
    server.start()  # the seed's config: no create_root
    try:
        time.sleep(1.0)
        assert not server.root.exists(), "the server created a missing root"
        _answers_503(server)
        result = client.once()
        assert result.returncode != 0, "a pass against a missing server root claimed success"
        assert contents(client.root) == files
    finally:
        server.stop()
    shutil.move(away, server.root)
    server.start()
    run_ok(client.once())
    assert contents(client.root) == files == contents(server.root)


def test_2_empty_mount_point_is_refused(server: SafetyServer, tmp_path: Path) -> None:
    client, files = _synced_pair(server, tmp_path)
    server.stop()
    away = tmp_path / "disk-not-mounted"
    shutil.move(server.root, away)
    server.root.mkdir()  # the mount point, without the disk
    server.start()
    try:
        _answers_503(server)
        client.once()
        assert contents(client.root) == files
        assert contents(server.root) == {}, "files were written to the bare mount point"
    finally:
        server.stop()


# -- 3. any web page can use the API of the default setup --------------------------------


def test_3_cross_site_requests_are_refused(server: SafetyServer) -> None:
    write(server.root, "victim.txt", b"precious")
    server.wait_indexed()
    port = server.port
    delete = sync_body([{"Delete": {"path": "victim.txt"}}])
    # A form-like POST (no preflight) from another site.
    status, _, body = call(port, "POST", "/api/sync", delete, {"Content-Type": "text/plain"})
    assert status == 403, (status, body)
    # Same with a foreign Origin, even as JSON.
    status, _, _ = call(
        port,
        "POST",
        "/api/sync",
        delete,
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
    )
    assert status == 403
    # A "simple" upload: text/plain, no custom header.
    status, _, _ = call(
        port, "POST", "/api/upload?path=planted.txt", b"x", {"Content-Type": "text/plain"}
    )
    assert status == 403
    # DNS rebinding: a foreign Host name on a loopback connection.
    status, _, body = call(port, "GET", "/api/list", None, {"Host": f"evil.example:{port}"})
    assert status == 403, (status, body)
    assert (server.root / "victim.txt").read_bytes() == b"precious"
    assert not (server.root / "planted.txt").exists()
    # The WebSocket checks Origin too.
    assert websocket_status(port, "http://evil.example") == 403
    # This machine's own requests still work.
    assert websocket_status(port, None) == 101
    status, _, _ = call(port, "GET", "/api/list", None, {"Host": f"localhost:{port}"})
    assert status == 200
    status, _, body = call(port, "POST", "/api/sync", delete, {"Content-Type": "application/json"})
    assert status == 200, body
    assert not (server.root / "victim.txt").exists()


def websocket_status(port: int, origin: str | None) -> int:
    lines = [
        "GET /api/events HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


# -- 4. the loopback rule bypassed by a proxy --------------------------------------------


def test_4_proxied_requests_are_refused(tmp_path: Path) -> None:
    front = free_port()
    back = SafetyServer(
        tmp_path,
        servers={
            "front": {
                "listen": [f"127.0.0.1:{front}"],
                "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": ""}]}]}],
            }
        },
    )
    back.servers["front"]["routes"][0]["handle"][0]["upstreams"][0]["dial"] = (
        f"127.0.0.1:{back.port}"
    )
    back.start()
    try:
        write(back.root, "private.txt", b"private")
        back.wait_indexed()
        status, _, body = call(front, "GET", "/api/list")
        assert status == 403, (status, body)
        status, _, _ = call(
            front,
            "POST",
            "/api/upload?path=from-the-internet.txt",
            b"x",
            {"Content-Type": "application/json", "X-Content-SHA256": sha(b"x")},
        )
        assert status == 403
        assert not (back.root / "from-the-internet.txt").exists()
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
            status, _, _ = call(back.port, "GET", "/api/list", None, {header: value})
            assert status == 403, header
        status, _, _ = call(back.port, "GET", "/api/list")
        assert status == 200
    finally:
        back.stop()


# -- 5. a symlinked local folder is written through, then deleted on the server ----------


def test_5_symlinked_folder_is_left_alone(server: SafetyServer, tmp_path: Path) -> None:
    write(server.root, "ext/a.txt", b"server a")
    write(server.root, "ext/b.txt", b"server b")
    write(server.root, "notes.txt", b"server notes")
    server.wait_indexed()
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "mine.txt", b"not for sync")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    outside = tmp_path / "outside-folder"
    write(outside, "private.txt", b"private")
    before = {p: snapshot(p) for p in (elsewhere, outside)}
    local = tmp_path / "a"
    local.mkdir()
    (local / "ext").symlink_to(elsewhere)
    (local / "notes.txt").symlink_to(secret)
    (local / "up").symlink_to(outside)
    client = Client(server, local)
    client.once()
    client.once()
    assert {p: snapshot(p) for p in (elsewhere, outside)} == before, "written through a link"
    assert secret.read_bytes() == b"secret"
    server_files = contents(server.root)
    assert server_files["ext/a.txt"] == sha(b"server a")
    assert server_files["ext/b.txt"] == sha(b"server b")
    assert server_files["notes.txt"] == sha(b"server notes")
    assert not any(p.startswith("up/") for p in server_files), "read through a link"
    assert (local / "ext").is_symlink() and (local / "notes.txt").is_symlink()


# -- 6. unauthenticated bodies are read in full ------------------------------------------


def open_files(pid: int) -> set[str]:
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return found


def open_fds_into(pid: int, folder: Path) -> list[str]:
    return sorted(p for p in open_files(pid) if p.startswith(str(folder)))


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def refused_before_the_body(server: SafetyServer, target: str, status: int) -> None:
    """A POST declaring a 4 GB body gets ``status`` (never ``100 Continue``) with
    ``Expect``, and without it the answer arrives while the body is still being sent,
    nothing of it spooled (no file in the server's TMPDIR, no descriptor into it)."""
    assert server.process is not None
    head = (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 4000000000\r\n"
    )
    expected = f"HTTP/1.1 {status}".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall((head + "Expect: 100-continue\r\n\r\n").encode())
        answer = read_head(sock)
    assert answer.startswith(expected), answer[:200]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall((head + "\r\n").encode())
        try:
            for _ in range(8):
                sock.sendall(b"\0" * (1 << 20))
        except OSError:
            pass  # the server may close early: that is allowed
        spooled = open_fds_into(server.process.process.pid, server.spool)
        spooled += [p.name for p in server.spool.iterdir() if p.is_file()]
        answer = read_head(sock)
    assert answer.startswith(expected), answer[:200]
    assert spooled == [], f"the body was spooled: {spooled}"


def test_6_unauthenticated_upload_is_refused_before_the_body(tmp_path: Path) -> None:
    server = SafetyServer(tmp_path, clients=[{"id": "writer", "token": WRITER}]).start()
    try:
        refused_before_the_body(server, "/api/upload?path=big.bin", 401)
        assert not any(name.endswith(".tmp") for name in os.listdir(server.root))
        assert not (server.root / "big.bin").exists()
    finally:
        server.stop()


def test_6_a_body_limit_answers_before_the_body(tmp_path: Path) -> None:
    """Every route, not only file_sync: ``request_body`` ``max_size`` refuses a
    declared-too-large body with 413 up front."""
    limited = {
        "match": [{"path": ["/limited"]}],
        "handle": [
            {"handler": "request_body", "max_size": 1000},
            {"handler": "static_response", "body": "ok"},
        ],
    }
    server = SafetyServer(tmp_path, before=[limited]).start()
    try:
        refused_before_the_body(server, "/limited", 413)
        status, _, body = call(server.port, "POST", "/limited", b"{}", {})
        assert (status, body) == (200, b"ok")
    finally:
        server.stop()


# -- 7. a client can move another client's cursor ----------------------------------------


def test_7_identity_comes_from_the_token(tmp_path: Path) -> None:
    clients = [
        {"id": "writer", "token": WRITER},
        {"id": "reader", "token": READER, "read_only": True},
    ]
    server = SafetyServer(tmp_path, clients=clients).start()
    try:
        port = server.port
        as_writer = {"Authorization": f"Bearer {WRITER}", "Content-Type": "application/json"}
        as_reader = {"Authorization": f"Bearer {READER}", "Content-Type": "application/json"}
        status, _, body = call(port, "POST", "/api/sync", sync_body([], "writer"), as_writer)
        assert status == 200, body
        write(server.root, "pending.txt", b"for the writer")
        _wait_listed(port, "pending.txt", as_writer)
        # The reader names the writer in the body: refused, and nothing consumed.
        status, _, body = call(port, "POST", "/api/sync", sync_body([], "writer"), as_reader)
        assert 400 <= status < 500, (status, body)
        status, _, body = call(port, "POST", "/api/sync", sync_body([], "writer"), as_writer)
        assert status == 200, body
        operations = json.loads(body)["operations"]
        paths = [next(iter(op.values())).get("metadata", {}).get("path") for op in operations]
        assert "pending.txt" in paths, "another client consumed the writer's changes"
        # A writer cannot speak for another id either.
        status, _, _ = call(port, "POST", "/api/sync", sync_body([], "someone-else"), as_writer)
        assert 400 <= status < 500
    finally:
        server.stop()


def _wait_listed(port: int, path: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _, body = call(port, "GET", "/api/list", None, headers)
        if status == 200 and any(item["path"] == path for item in json.loads(body)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never listed")


# -- 8. long names and odd input: 4xx, never 500 -----------------------------------------

LONG_NAME = "\u00e9" * 127 + "x"  # 255 bytes of UTF-8, legal on Linux


def test_8_a_255_byte_name_round_trips(server: SafetyServer, tmp_path: Path) -> None:
    assert len(LONG_NAME.encode()) == 255
    status, _, body = upload(server.port, LONG_NAME, b"up")
    assert status in (200, 201), (status, body)
    assert (server.root / LONG_NAME).read_bytes() == b"up"
    local = tmp_path / "a"
    local.mkdir()
    other = "\u00fc" * 127 + "y"
    write(local, f"d/{other}", b"from the client")
    run_ok(Client(server, local).once())
    assert (local / LONG_NAME).read_bytes() == b"up"
    assert (server.root / "d" / other).read_bytes() == b"from the client"
    assert_clean_log(server)


def test_8_odd_input_gets_4xx_and_no_traceback(server: SafetyServer) -> None:
    port = server.port
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("POST", "/api/sync", b"[" * 100_000, json_type),
        ("POST", "/api/sync", b'{"operations": ' + b"[" * 50_000, json_type),
        ("GET", "/api/list?since=" + "9" * 5000, None, {}),
        ("GET", "/api/list?since=0&limit=%C2%B2", None, {}),
        ("GET", "/api/list?since=%C2%B2", None, {}),
    ]
    for method, target, body, headers in cases:
        status, _, answer = call(port, method, target, body, headers)
        assert 400 <= status < 500, (target[:60], status, answer[:200])
        assert json.loads(answer).get("error"), answer[:200]
    assert_clean_log(server)


# -- found by reading ----------------------------------------------------------------------


def test_read_index_is_not_served_by_a_file_server_on_the_same_root(tmp_path: Path) -> None:
    server = SafetyServer(tmp_path, handler={})
    server.after = [{"handle": [{"handler": "file_server", "root": str(server.root)}]}]
    server.start()
    try:
        write(server.root, "page.html", b"<p>hello</p>")
        server.wait_indexed()
        status, _, body = call(server.port, "GET", "/page.html")
        assert status == 200 and body == b"<p>hello</p>"  # the file server works
        candidates = {"/.caddytw-sync/index.db", "/.caddytw-sync/index.db-wal"}
        for folder, _dirs, files in os.walk(server.root):
            for name in files:
                full = Path(folder) / name
                with open(full, "rb") as handle:
                    if handle.read(16) == b"SQLite format 3\0":
                        candidates.add("/" + full.relative_to(server.root).as_posix())
        for target in sorted(candidates):
            status, _, body = call(server.port, "GET", quote(target))
            assert status != 200 or not body.startswith(b"SQLite"), f"{target} is served"
            assert status != 200, (target, status)
    finally:
        server.stop()


def test_read_index_commits_are_durable(server: SafetyServer, tmp_path: Path) -> None:
    """``synchronous=FULL`` on the index, or else a new index id (clients re-list) after
    an unclean shutdown: either way a client never trusts sequence numbers that a power
    cut could have rolled back."""
    status, headers, _ = call(server.port, "GET", "/api/list")
    first = headers["x-sync-index-id"]
    server.kill()
    server.start()
    status, headers, _ = call(server.port, "GET", "/api/list")
    assert status == 200
    if headers["x-sync-index-id"] != first:
        return  # the generation changed after the crash: clients re-list
    # The index class of the server's code, in a process with the server's path.
    probe = subprocess.run(
        [sys.executable, "-c", SYNCHRONOUS_PROBE, str(tmp_path / "probe.db")],
        env=server_env(server.env()),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not this checkout: ``-c`` puts the working folder first on the path
    )
    assert probe.returncode == 0, probe.stderr
    level = int(probe.stdout.strip())
    assert level >= 2, f"PRAGMA synchronous={level}: a power cut can roll back commits"


SYNCHRONOUS_PROBE = """
import sqlite3, sys
from pathlib import Path
from caddytw.sync.index import SyncIndex
index = SyncIndex(Path(sys.argv[1]))
found = [v for v in vars(index).values() if isinstance(v, sqlite3.Connection)]
print(found[0].execute("PRAGMA synchronous").fetchone()[0])
index.close()
"""


def test_read_startup_removes_only_its_own_temp_files(server: SafetyServer) -> None:
    lookalike = server.root / "notes" / ".draft.0123456789abcdef.tmp"
    write(server.root, "notes/.draft.0123456789abcdef.tmp", b"the user's own file")
    write(server.root, "notes/real.txt", b"real")
    server.wait_indexed()
    server.stop()
    server.start()
    server.wait_indexed()
    assert lookalike.read_bytes() == b"the user's own file"


class _Dropping(BaseHTTPRequestHandler):
    """A broken middlebox in front of a real server: every ``/api/sync`` request that
    carries operations is answered ``{"operations": [], "conflicts": []}`` (a seed-shaped
    answer without ``results``) and never reaches the server."""

    upstream = 0
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path.startswith("/api/sync") and body and json.loads(body).get("operations"):
            answer = b'{"operations": [], "conflicts": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        status, answer_headers, data = call(self.upstream, self.command, self.path, body, headers)
        self.send_response(status)
        for key, value in answer_headers.items():
            if key not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_read_client_does_not_trust_an_answer_without_results(
    server: SafetyServer, tmp_path: Path
) -> None:
    write(server.root, "keep.txt", b"keep")
    write(server.root, "gone.txt", b"to delete")
    server.wait_indexed()
    local = tmp_path / "a"
    local.mkdir()
    run_ok(Client(server, local).once())
    (local / "gone.txt").unlink()
    handler = type("Handler", (_Dropping,), {"upstream": server.port})
    relay = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    try:
        proxied = Client(server, local)
        proxied.server = type("Url", (), {"url": f"http://127.0.0.1:{relay.server_port}"})()
        result = proxied.once()
        assert result.returncode != 0, "a pass whose operations were not confirmed succeeded"
    finally:
        relay.shutdown()
        relay.server_close()
    client = Client(server, local)
    client.once()
    client.once()
    assert not (server.root / "gone.txt").exists(), "the user's delete was forgotten"
    assert not (local / "gone.txt").exists(), "the deleted file came back"


def test_read_windows_and_macos_names_are_refused(server: SafetyServer, tmp_path: Path) -> None:
    bad = ["CON", "aux.txt", "com1.log", "trailing.", "trailing ", "dir./x.txt", "nul"]
    for name in bad:
        status, _, body = upload(server.port, name, b"x")
        assert 400 <= status < 500 and status not in (401, 403), (name, status, body)
    assert contents(server.root) == {}
    # A client holding such a name reports it, keeps it, and syncs everything else.
    local = tmp_path / "a"
    write(local, "aux.txt", b"local aux")
    write(local, "fine.txt", b"fine")
    client = Client(server, local)
    client.once()
    client.once()
    assert (local / "aux.txt").read_bytes() == b"local aux"
    assert (server.root / "fine.txt").read_bytes() == b"fine"
    assert not (server.root / "aux.txt").exists()
    assert_clean_log(server)


def test_read_local_edit_during_the_last_check_is_never_overwritten(
    server: SafetyServer, tmp_path: Path
) -> None:
    """The client checks that a file still holds what its plan assumed, then renames the
    download over it. A user who saves while that check runs (here: while the client
    rehashes a large file whose mtime just moved) must keep the save: at the path or
    as a conflict copy. The test sees the check as the client's open descriptor on the
    file (``/proc/PID/fd``), so it saves exactly inside the window."""
    local = tmp_path / "a"
    local.mkdir()
    big = os.urandom(1 << 20) * 64
    write(local, "doc.bin", big)
    run_ok(Client(server, local).once())
    newer = os.urandom(1 << 20) * 8
    status, _, body = upload(server.port, "doc.bin", newer)
    assert status == 200, body
    client = Client(server, local)
    process = subprocess.Popen(
        client.command("--once"), env=client.env(), cwd=REPO, stderr=subprocess.PIPE
    )
    target = local / "doc.bin"
    saved = b"the user's save"
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".doc.bin.") for p in local.iterdir()):
            assert process.poll() is None and time.monotonic() < deadline, "no download"
        os.utime(target, (time.time() - 20,) * 2)  # same bytes, new mtime: rehashed
        while str(target) not in open_files(process.pid):
            assert process.poll() is None and time.monotonic() < deadline, "no check seen"
        scratch = tmp_path / "save.tmp"
        scratch.write_bytes(saved)
        os.replace(scratch, target)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    client.once()
    kept = set(contents(local).values()) | set(contents(server.root).values())
    assert sha(saved) in kept, "the save made during the check was overwritten"
