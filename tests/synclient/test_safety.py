"""Sync safety rules on the client side (``shared/SYNC-DESIGN.md``), end to end.

Each test runs a real ``file_sync`` server process and real ``synclient --once``
processes and checks what is on both disks afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.synclient.harness import Client, SyncServer
from tests.synclient.test_e2e import age, ok, write

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SyncServer]:
    srv = SyncServer(tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()


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
