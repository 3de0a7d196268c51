"""The small-file cache (caddytw/handlers/file_server/cache.py): every change to a file
is served at once, never stale bytes; the cache stays bounded.

The racy window (a file's ctime must be this old before its bytes are remembered) is
shortened here to 50 ms and files are let settle for 0.1 s after being written, so
that the cache is actually used; the window's default is 2 s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from caddytw.handlers.file_server import cache as cache_module
from caddytw.handlers.file_server.cache import Entry, FileCache
from tests.support.memory import memory_server

RACY = 0.05


def settle() -> None:
    """Let the last change fall out of the (shortened) racy window."""
    time.sleep(RACY * 2)


def write_settled(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    settle()


# -- the cache on its own --------------------------------------------------------------


def filled(cache: FileCache, path: Path) -> Entry | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return cache.fill(str(path), fd, os.fstat(fd))
    finally:
        os.close(fd)


def test_a_settled_small_file_is_remembered_and_checked(tmp_path):
    path = tmp_path / "a.txt"
    write_settled(path, b"hello")
    cache = FileCache(racy_seconds=RACY)
    entry = filled(cache, path)
    assert entry is not None
    assert cache.get(str(path)) is entry
    assert entry.data == b"hello" and entry.validators.etag.startswith('"')
    path.write_bytes(b"HELLO")  # same size, same second
    assert cache.get(str(path)) is None and len(cache) == 0


def test_a_recently_changed_file_is_not_remembered(tmp_path):
    """Its next change might keep the same ctime (one clock tick): not trusted."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    assert filled(FileCache(), path) is None


def test_large_files_are_not_read_into_memory(tmp_path):
    path = tmp_path / "big.bin"
    write_settled(path, b"x" * 2048)
    assert filled(FileCache(racy_seconds=RACY, max_file_bytes=1024), path) is None


def test_bounded_by_entries_and_bytes(tmp_path):
    for index in range(6):
        (tmp_path / f"{index}.txt").write_bytes(b"x" * 100)
    settle()
    cache = FileCache(racy_seconds=RACY, max_entries=4, max_total_bytes=350)
    for index in range(6):
        filled(cache, tmp_path / f"{index}.txt")
    assert len(cache) == 3 and cache.size == 300
    assert cache.get(str(tmp_path / "0.txt")) is None
    assert cache.get(str(tmp_path / "5.txt")) is not None


# -- end to end: never a stale byte ----------------------------------------------------


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "RACY_SECONDS", RACY)
    site, outside = tmp_path / "site", tmp_path / "outside"
    site.mkdir()
    outside.mkdir()
    (outside / "f.txt").write_bytes(b"SECRET\n")
    write_settled(site / "f.txt", b"version 1\n")
    server = memory_server([{"handle": [{"handler": "file_server", "root": str(site)}]}])
    first = server.request("GET", "/f.txt")
    assert first.body == b"version 1\n"
    return site, outside, server, first


def test_a_hit_opens_nothing(served, monkeypatch):
    """The second request is the cache's: one stat, no open."""
    site, _, server, first = served
    opened: list[str] = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    again = server.request("GET", "/f.txt")
    assert again.body == first.body and again.headers == first.headers
    assert str(site / "f.txt") not in opened


def test_same_size_rewrite_with_the_old_mtime_is_served_at_once(served):
    site, _, server, first = served
    before = os.stat(site / "f.txt")
    (site / "f.txt").write_bytes(b"version 2\n")
    os.utime(site / "f.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    response = server.request("GET", "/f.txt")
    assert response.body == b"version 2\n"
    assert response.header("etag") == first.header("etag")  # Caddy's ETag: mtime + size


def test_rename_over_is_served_at_once(served):
    site, _, server, _ = served
    before = os.stat(site / "f.txt")
    write_settled(site / "new.tmp", b"version 3\n")
    os.utime(site / "new.tmp", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.rename(site / "new.tmp", site / "f.txt")
    assert server.request("GET", "/f.txt").body == b"version 3\n"


def test_deleted_is_404_at_once(served):
    site, _, server, _ = served
    (site / "f.txt").unlink()
    assert server.request("GET", "/f.txt").status == 404


def test_truncated_is_served_at_once(served):
    site, _, server, _ = served
    os.truncate(site / "f.txt", 0)
    response = server.request("GET", "/f.txt")
    assert (response.status, response.body) == (200, b"")


def test_replaced_by_a_directory(served):
    site, _, server, _ = served
    (site / "f.txt").unlink()
    (site / "f.txt").mkdir()
    assert server.request("GET", "/f.txt").status in (308, 404)


def test_swapped_for_an_escaping_symlink_is_404(served):
    site, outside, server, _ = served
    (site / "f.txt").unlink()
    (site / "f.txt").symlink_to(outside / "f.txt")
    response = server.request("GET", "/f.txt")
    assert response.status == 404 and b"SECRET" not in response.body


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_made_unreadable_is_403(served):
    site, _, server, _ = served
    (site / "f.txt").chmod(0)
    try:
        assert server.request("GET", "/f.txt").status == 403
    finally:
        (site / "f.txt").chmod(0o644)


def test_ranges_and_conditionals_from_the_cache(served):
    _, _, server, first = served
    etag = first.header("etag")
    assert server.request("GET", "/f.txt", headers={"If-None-Match": etag}).status == 304
    ranged = server.request("GET", "/f.txt", headers={"Range": "bytes=0-6"})
    assert (ranged.status, ranged.body) == (206, b"version")
    multi = server.request("GET", "/f.txt", headers={"Range": "bytes=0-0,8-8"})
    assert multi.status == 206 and b"v" in multi.body and b"1" in multi.body
    head = server.request("HEAD", "/f.txt")
    assert (head.body, head.header("content-length")) == (b"", "10")
