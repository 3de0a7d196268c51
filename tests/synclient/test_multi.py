"""End to end: one ``synclient`` process, one folder, two real ``file_sync`` servers; and
``--config`` with two folders.

The servers' journals are the witness for echo suppression: every change the client
commits on a server gets a sequence number there and carries the client's id as its
origin, so "a further pass transfers nothing" is "no server's cursor moves", and "each
change was uploaded exactly once" is "each server's journal holds exactly the expected
entries from this client".
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import REPO, server_env
from tests.synclient.harness import SyncServer, converged, tree, wait_until

pytestmark = pytest.mark.timeout(120)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(root: Path, rel: str, data: bytes, old: bool = True) -> None:
    """Write a file; ``old`` backdates it past the client's settle window."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        when = time.time() - 60
        os.utime(path, (when, when))


def journal(server: SyncServer, token: str | None = None) -> tuple[int, dict[str, str]]:
    """The server's cursor and ``{path: origin}`` of the latest change of each path."""
    request = urllib.request.Request(f"{server.url}/api/list?since=0&limit=100000")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.load(response)
    return page["cursor"], {c["path"]: c.get("origin") or "" for c in page["changes"]}


def listed(server: SyncServer) -> set[str]:
    with urllib.request.urlopen(f"{server.url}/api/list", timeout=10) as response:
        return {e["path"] for e in json.load(response) if not e.get("is_directory")}


def wait_listed(server: SyncServer) -> None:
    """Wait until the server's index matches its folder (files written or removed
    straight on disk are indexed by its watcher, asynchronously)."""
    wait_until(lambda: listed(server) == set(tree(server.root)), 30, "the server's index")


def client_id(root: Path) -> str:
    import sqlite3

    db = sqlite3.connect(root / ".synclient" / "state.db")
    try:
        return str(db.execute("SELECT value FROM meta WHERE key = 'client_id'").fetchone()[0])
    finally:
        db.close()


def env(tmp_path: Path) -> dict[str, str]:
    return {**server_env(), "XDG_DATA_HOME": str(tmp_path / "xdg")}


def synclient(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synclient", *args],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def once(tmp_path: Path, local: Path, *servers: SyncServer, extra: tuple[str, ...] = ()) -> str:
    args = [a for s in servers for a in ("--server", s.url)]
    result = synclient(tmp_path, *args, "--local-path", str(local), "--once", *extra)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    return result.stderr


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[SyncServer, SyncServer]]:
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    one, two = SyncServer(tmp_path / "s1"), SyncServer(tmp_path / "s2")
    try:
        one.start()
        two.start()
        yield one, two
    finally:
        one.stop()
        two.stop()


def test_two_servers_converge_keep_both_conflict_versions_and_never_echo(
    servers: tuple[SyncServer, SyncServer], tmp_path: Path
) -> None:
    s1, s2 = servers
    local = tmp_path / "local"
    write(s1.root, "from-s1.txt", b"one")
    write(s1.root, "shared/edit.txt", b"v0")
    write(s1.root, "clash.txt", b"v0")
    write(s2.root, "from-s2.txt", b"two")
    write(s2.root, "doomed.txt", b"delete me on s2")
    wait_listed(s1)
    wait_listed(s2)
    local.mkdir()
    write(local, "from-local.txt", b"here")
    once(tmp_path, local, s1, s2, extra=("--initial-sync",))
    assert converged(local, s1.root, s2.root)
    assert set(tree(local)) == {
        "from-s1.txt",
        "from-s2.txt",
        "from-local.txt",
        "shared/edit.txt",
        "clash.txt",
        "doomed.txt",
    }
    me = client_id(local)
    # Each server got every file it lacked exactly once, from this client.
    cursor1, origins1 = journal(s1)
    cursor2, origins2 = journal(s2)
    assert {p for p, o in origins1.items() if o == me} == {
        "from-s2.txt",
        "from-local.txt",
        "doomed.txt",
    }
    assert {p for p, o in origins2.items() if o == me} == {
        "from-s1.txt",
        "from-local.txt",
        "shared",
        "shared/edit.txt",
        "clash.txt",
    }
    # Echo: a further pass transfers nothing in either direction.
    before = tree(local)
    once(tmp_path, local, s1, s2)
    assert journal(s1)[0] == cursor1 and journal(s2)[0] == cursor2
    assert tree(local) == before

    # Changes on each server and locally, and a conflict made on both servers at once.
    write(s1.root, "shared/edit.txt", b"v1 from s1")
    (s2.root / "doomed.txt").unlink()
    write(s1.root, "clash.txt", b"clash: s1's version")
    write(s2.root, "clash.txt", b"clash: s2's version")
    write(local, "from-local.txt", b"edited here")
    wait_listed(s1)
    wait_listed(s2)
    once(tmp_path, local, s1, s2)
    assert converged(local, s1.root, s2.root)
    files = tree(local)
    assert files["shared/edit.txt"] == sha(b"v1 from s1")
    assert files["from-local.txt"] == sha(b"edited here")
    assert "doomed.txt" not in files
    clash = {p: h for p, h in files.items() if p.startswith("clash")}
    assert len(clash) == 2, clash
    assert set(clash.values()) == {sha(b"clash: s1's version"), sha(b"clash: s2's version")}
    assert any(".sync-conflict-" in p for p in clash)
    # And again nothing moves on a further pass.
    cursor1, cursor2 = journal(s1)[0], journal(s2)[0]
    once(tmp_path, local, s1, s2)
    assert journal(s1)[0] == cursor1 and journal(s2)[0] == cursor2
    assert tree(local) == files


def test_continuous_sync_with_two_servers_one_of_them_down_at_first(
    servers: tuple[SyncServer, SyncServer], tmp_path: Path
) -> None:
    s1, s2 = servers
    s2.stop()
    write(s2.root, "from-s2.txt", b"two")
    local = tmp_path / "local"
    local.mkdir()
    log = tmp_path / "client.log"
    args = ["--server", s2.url, "--server", s1.url, "--local-path", str(local)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "synclient", *args, "--interval", "1"],
            env=env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def output() -> str:
        return log.read_text(errors="replace")

    try:
        # The first server is down: the second is synced all the same, both ways.
        write(s1.root, "a/from-s1.txt", b"one")
        write(local, "from-local.txt", b"three")
        wait_until(lambda: converged(local, s1.root) and len(tree(s1.root)) == 2, 45, output())
        message = f"local @ {s2.url}: server unreachable"
        wait_until(lambda: message in output(), 30, f"{message!r} in\n{output()}")
        # Back up: retried with backoff, it catches up; live changes on each side flow.
        s2.start()
        wait_until(lambda: converged(local, s1.root, s2.root), 45, output())
        write(s2.root, "later/from-s2.txt", b"live two")
        write(s1.root, "a/from-s1.txt", b"live one")

        def done() -> bool:
            files = tree(local)
            return (
                converged(local, s1.root, s2.root)
                and files.get("later/from-s2.txt") == sha(b"live two")
                and files.get("a/from-s1.txt") == sha(b"live one")
            )

        wait_until(done, 45, output())
        # Echo: passes keep running (every second) and must not upload anything again.
        wait_until(lambda: listed(s1) == listed(s2) == set(tree(local)), 30, "the indexes")
        cursors = journal(s1)[0], journal(s2)[0]
        time.sleep(2.5)
        assert (journal(s1)[0], journal(s2)[0]) == cursors
        assert process.poll() is None, output()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert "Traceback" not in output()


def test_once_reports_a_server_down_after_syncing_the_other(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "down").mkdir()
    up, down = SyncServer(tmp_path / "up").start(), SyncServer(tmp_path / "down")
    try:
        local = tmp_path / "local"
        local.mkdir()
        write(up.root, "from-up.txt", b"one")
        write(local, "from-local.txt", b"here")
        wait_listed(up)
        result = synclient(
            tmp_path, "--server", down.url, "--server", up.url, "--local-path", str(local), "--once"
        )
    finally:
        up.stop()
    # The first server cannot be reached; the second is synced all the same, and the
    # run ends with the unreachable status, naming the folder and server.
    assert result.returncode == 3, result.stderr
    assert f"local @ {down.url}: cannot reach" in result.stderr
    assert "Traceback" not in result.stderr
    assert converged(local, up.root) and set(tree(up.root)) == {"from-up.txt", "from-local.txt"}


def test_config_file_with_two_folders(tmp_path: Path) -> None:
    token = "a-long-enough-secret-token"
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    s1 = SyncServer(tmp_path / "s1")
    s2 = SyncServer(tmp_path / "s2", clients=[{"id": "laptop", "token": token}])
    try:
        s1.start()
        s2.start()
        write(s1.root, "doc.txt", b"docs")
        write(s1.root, "skip.tmp", b"excluded")
        write(s2.root, "photo.jpg", b"jpeg")
        s1.wait_indexed()
        s2.wait_indexed()
        (tmp_path / "docs").mkdir()
        (tmp_path / "photos").mkdir()
        write(tmp_path / "photos", "new.jpg", b"local photo")
        config = tmp_path / "sync.toml"
        config.write_text(
            f"""
interval = 5

[[folders]]
path = "docs"
exclude = ["*.tmp"]
servers = ["{s1.url}"]

[[folders]]
path = "photos"
conflict = "keep-server"
[[folders.servers]]
url = "{s2.url}"
token = "{token}"
"""
        )
        result = synclient(tmp_path, "--config", str(config), "--once")
        assert result.returncode == 0, result.stderr
        assert tree(tmp_path / "docs") == {"doc.txt": sha(b"docs")}
        assert converged(tmp_path / "photos", s2.root)
        assert set(tree(s2.root)) == {"photo.jpg", "new.jpg"}
        assert not (tmp_path / "docs" / "skip.tmp").exists()
    finally:
        s1.stop()
        s2.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The rest of the checks are tested in memory (test_multi_local.py).
        (
            "[[folders]]\npath = 'a'\nservers = ['http://127.0.0.1:1']\n"
            "[[folders]]\npath = 'b'\n[[folders.servers]]\nurl = 'ftp://x'\n",
            "folders[1].servers[0].url: 'ftp://x' is not an http:// or https:// URL",
        ),
        ("[[folders]\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(text)
    result = synclient(tmp_path, "--config", str(config), "--once")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
