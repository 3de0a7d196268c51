"""Sync safety rules on the client side (``shared/SYNC-DESIGN.md``), end to end.

Each test runs a real ``file_sync`` server process and real ``synclient --once``
processes and checks what is on both disks afterwards.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.synclient.harness import Client, SyncServer, tree, wait_until
from tests.synclient.test_e2e import age, ok, write

pytestmark = pytest.mark.timeout(120)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_ignored_paths_are_untouched_on_both_sides(server: SyncServer, tmp_path: Path) -> None:
    """Finding 1: an ignore rule never downloads, uploads or deletes; un-ignoring merges."""
    write(server.root, "a.log", b"server log")
    write(server.root, "keep.txt", b"keep")
    write(server.root, ".syncignore", b"keep.txt\n")  # another machine's rules: not ours
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "a"
    write(local, "mine.log", b"local log")
    write(local, "secret/x.txt", b"private")
    write(local, ".syncignore", b"secret/\n")
    age(local)
    client = Client(server, local)
    for _run in range(2):
        ok(client.once("--initial-sync", "--exclude", "*.log"))
        assert not (local / "a.log").exists()
        assert (server.root / "a.log").read_bytes() == b"server log"
        assert not (server.root / "mine.log").exists()
        assert not (server.root / "secret").exists()
        assert (server.root / ".syncignore").read_bytes() == b"keep.txt\n"
        assert (local / ".syncignore").read_bytes() == b"secret/\n"
        assert (local / "keep.txt").read_bytes() == b"keep"
    # A rule added after a path was synced: the path is no longer scanned, which must
    # not read as a local deletion.
    ok(client.once("--exclude", "*.log", "--exclude", "keep.txt"))
    assert (server.root / "keep.txt").read_bytes() == b"keep"
    (local / "keep.txt").unlink()  # deleted while ignored: stays on the server
    ok(client.once("--exclude", "*.log", "--exclude", "keep.txt"))
    assert (server.root / "keep.txt").read_bytes() == b"keep"
    # Un-ignoring is a fresh merge for those paths: union, never a delete.
    (local / ".syncignore").unlink()
    ok(client.once())
    assert (local / "a.log").read_bytes() == b"server log"
    assert (local / "keep.txt").read_bytes() == b"keep"
    assert (server.root / "mine.log").read_bytes() == b"local log"
    assert (server.root / "secret/x.txt").read_bytes() == b"private"
    assert (server.root / ".syncignore").read_bytes() == b"keep.txt\n"
    assert not (local / ".syncignore").exists()


def test_a_new_server_index_is_a_fresh_merge(server: SyncServer, tmp_path: Path) -> None:
    """Finding 2: the server's folder replaced by an empty one (a disk not mounted at
    boot) must not empty the client: absence from a new index is never a delete."""
    local = tmp_path / "a"
    write(local, "one.txt", b"1")
    write(local, "two/deep.txt", b"2")
    age(local)
    client = Client(server, local)
    ok(client.once("--initial-sync"))
    assert (server.root / "two/deep.txt").read_bytes() == b"2"
    server.stop()
    server.root.rename(tmp_path / "not-mounted")
    server.root.mkdir()
    write(server.root, "other/deep.txt", b"other bytes")  # the new folder has its own file
    age(server.root)
    server.start()
    result = client.once()
    assert (local / "one.txt").read_bytes() == b"1", result.stderr
    local_files = tree(local)
    assert hashlib.sha256(b"2").hexdigest() in local_files.values()
    if result.returncode == 0:  # served as a new folder: a union, conflict copies
        assert tree(server.root) == local_files
        assert hashlib.sha256(b"other bytes").hexdigest() in local_files.values()
    else:  # the server refuses a folder without its marker
        assert result.returncode == 7, result.stderr


def test_local_marker_missing_stops_sync(server: SyncServer, tmp_path: Path) -> None:
    """An empty mount point where a synced folder was: stop, download nothing into it."""
    write(server.root, "f.txt", b"server file")
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "a"
    client = Client(server, local)
    ok(client.once("--initial-sync"))
    assert (local / ".caddytw-folder").is_file()
    local.rename(tmp_path / "unmounted")
    local.mkdir()
    result = client.once()
    assert result.returncode == 5, result.stderr
    assert "marker" in result.stderr and "Traceback" not in result.stderr
    assert list(local.iterdir()) == []
    assert (server.root / "f.txt").read_bytes() == b"server file"
    ok(client.once("--initial-sync"))  # the user says this is the folder: a fresh merge
    assert (local / "f.txt").read_bytes() == b"server file"


@contextmanager
def fake_server(tmp_path: Path, handler: type[BaseHTTPRequestHandler]) -> Iterator[SyncServer]:
    """A plain HTTP server in this process answering as ``handler`` does: a server in
    a state ``file_sync`` never answers (or does not answer yet)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SyncServer(tmp_path, port=httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Unavailable(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"error": "the sync folder /srv/sync has no marker"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_server_folder_unavailable_stops_the_pass(tmp_path: Path) -> None:
    """A server answering 503 (its folder or marker missing): a clear message, exit 7,
    no change. (A bare HTTP server stands in for that server state until file_sync
    answers it; the message shape is file_sync's ``{"error": ...}``.)"""
    local = tmp_path / "a"
    write(local, "mine.txt", b"keep me")
    with fake_server(tmp_path, _Unavailable) as fake:
        result = Client(fake, local).once("--initial-sync")
    assert result.returncode == 7, result.stderr
    assert "has no marker" in result.stderr and "Traceback" not in result.stderr
    assert tree(local) == {"mine.txt": hashlib.sha256(b"keep me").hexdigest()}


class _Broken(BaseHTTPRequestHandler):
    """A server that lists an empty folder properly but answers ``/api/sync`` without
    ``results`` (and a garbage listing when asked for ``garbage``)."""

    protocol_version = "HTTP/1.1"
    garbage = False

    def answer(self, value: object) -> None:
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.garbage:
            self.answer({"index_id": 5, "cursor": "x", "changes": [], "more": 0, "reset": 0})
        elif "since=" in self.path:
            page = {"index_id": "i", "cursor": 0, "changes": [], "more": False, "reset": True}
            self.answer(page)
        else:
            self.answer([])

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer({"operations": [], "conflicts": []})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("garbage", [False, True])
def test_invalid_server_answers_stop_the_pass(tmp_path: Path, garbage: bool) -> None:
    """A sync answer without ``results`` is not "applied"; bad JSON is no traceback."""
    handler = type("Handler", (_Broken,), {"garbage": garbage})
    local = tmp_path / "a"
    (local / "folder").mkdir(parents=True)  # a folder to create on the server
    with fake_server(tmp_path, handler) as fake:
        result = Client(fake, local).once("--initial-sync")
    assert result.returncode == 8, result.stderr
    assert ("invalid answer" if garbage else "results") in result.stderr
    assert "Traceback" not in result.stderr
    assert (local / "folder").is_dir()


def test_never_through_a_symlink(server: SyncServer, tmp_path: Path) -> None:
    """Finding 5: a local link where the server has a folder or file is left alone on
    both sides: nothing written through it, nothing deleted on the server later."""
    write(server.root, "ext/a.txt", b"server a")
    write(server.root, "ext/sub/b.txt", b"server b")
    write(server.root, "f.txt", b"server f")
    age(server.root)
    server.wait_indexed()
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "outside.txt", b"not synced")
    local = tmp_path / "a"
    local.mkdir()
    (local / "ext").symlink_to(elsewhere)
    (local / "f.txt").symlink_to(elsewhere / "outside.txt")
    (local / "up").symlink_to(elsewhere)  # nothing on the server: not read for upload
    client = Client(server, local)
    before = tree(server.root)
    for _run in range(2):
        result = client.once("--initial-sync")
        ok(result)
        assert "symbolic link" in result.stderr
        assert tree(elsewhere) == {"outside.txt": sha(b"not synced")}
        assert tree(server.root) == before
        assert (local / "ext").is_symlink() and (local / "f.txt").is_symlink()
    # The link replaced by a real folder: a fresh merge for everything under it.
    (local / "ext").unlink()
    write(local, "ext/a.txt", b"local a")
    age(local)
    ok(client.once())
    files = tree(server.root)
    assert files["ext/sub/b.txt"] == sha(b"server b")
    assert {sha(b"local a"), sha(b"server a")} <= set(files.values())


def test_our_own_files_are_never_synced(server: SyncServer, tmp_path: Path) -> None:
    """The state folder, the marker and .syncignore belong to one client: a server
    that holds such paths (another client synced its root) never overwrites ours."""
    write(server.root, ".synclient/state.db", b"not a database")
    write(server.root, ".caddytw-folder", b"someone else's marker")
    age(server.root)
    local = tmp_path / "a"
    write(local, "mine.txt", b"mine")
    age(local)
    client = Client(server, local)
    ok(client.once("--initial-sync"))
    ok(client.once())
    assert (local / ".caddytw-folder").read_bytes() != b"someone else's marker"
    assert (local / ".synclient/state.db").read_bytes().startswith(b"SQLite format 3")
    assert (server.root / ".synclient/state.db").read_bytes() == b"not a database"
    assert (server.root / "mine.txt").read_bytes() == b"mine"


def test_a_name_this_folder_cannot_store_is_reported_not_deleted(
    server: SyncServer, tmp_path: Path
) -> None:
    """Rule 8: a server path the client's filesystem cannot hold (here: longer than
    PATH_MAX under the client's longer root) is reported; everything else syncs, and
    nothing is deleted on either side, in this run or the next."""
    deep = "/".join(["d" * 250] * 15)
    write(server.root, f"{deep}/f.txt", b"deep")
    write(server.root, "fine.txt", b"fine")
    age(server.root)
    server.wait_indexed()
    before = tree(server.root)
    local = tmp_path / ("c" * 250)
    client = Client(server, local)
    for _run in range(2):
        result = client.once("--initial-sync")
        assert result.returncode == 1, result.stderr
        assert "cannot sync" in result.stderr and "Traceback" not in result.stderr
        assert (local / "fine.txt").read_bytes() == b"fine"
        assert tree(server.root) == before
    # A continuous client reports it once and does not retry it pass after pass (full
    # passes every 3 s: after 8 s at least two have run since the first report).
    client.start()
    try:
        wait_until(lambda: "cannot sync" in client.output(), 30, "the report")
        time.sleep(8)
    finally:
        client.stop()
    assert client.output().count("cannot sync") == 1, client.output()
    assert tree(server.root) == before
