"""Batches against a real ``twistd``: many files per request each way, each entry
verified, conditional and atomic like a single upload, with per-entry results; bad
framing, bombs and limits refused; plain endpoints unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard

from caddytw.sync import compression
from caddytw.sync.batch import EntryParser, end_line, header_line
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, everything, folder_view, sha, sync_route, upload_server

LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with upload_server(tmp_path_factory.mktemp("batch"), LIMIT) as srv:
        yield srv


def batch(entries: list[tuple[dict[str, Any], bytes]]) -> bytes:
    out = b"".join(header_line({**h, "size": len(b)}) + b for h, b in entries)
    return out + end_line(len(entries))


def post(api: Api, endpoint: str, body: bytes, **headers: str) -> Any:
    fixed = {"Content-Type": "application/x-caddytw-batch", **headers}
    return api.call("POST", endpoint, body, {k.replace("_", "-"): v for k, v in fixed.items()})


def test_batch_upload_stores_each_entry_with_its_own_result(server) -> None:
    api = Api(server.ports[0])
    files = {f"b/f{i}.txt": os.urandom(100) + b"x" * i for i in range(300)}
    entries = [({"path": p, "sha256": sha(d), "if_none_match": "*"}, d) for p, d in files.items()]
    reply = post(api, "batch/upload", batch(entries))
    assert reply.status == 200, reply
    results = reply.json()["results"]
    assert [r["index"] for r in results] == list(range(300))
    assert {r["status"] for r in results} == {201}
    for path, data in files.items():
        assert (server.root / path).read_bytes() == data
    listed = api.listing()
    assert all(listed[p]["hash"] == sha(d) for p, d in files.items())

    # Per entry: a stale base (412 + ConflictInfo), a wrong hash (422), a bad path
    # (400), identical content (200), a good update (200): the others still land.
    first = "b/f0.txt"
    new = b"new content"
    mixed = [
        ({"path": first, "sha256": sha(new), "if_none_match": "*"}, new),
        ({"path": "b/f1.txt", "sha256": sha(b"other"), "if_match": sha(b"nope")}, b"other"),
        ({"path": "b/bad.txt", "sha256": sha(b"declared")}, b"actual"),
        ({"path": "../escape", "sha256": sha(b"x")}, b"x"),
        ({"path": "b/f2.txt", "sha256": sha(files["b/f2.txt"])}, files["b/f2.txt"]),
        ({"path": "b/f3.txt", "sha256": sha(new), "if_match": sha(files["b/f3.txt"])}, new),
    ]
    body = compression.compress(batch(mixed))
    reply = post(api, "batch/upload", body, Content_Encoding="zstd")
    statuses = [r["status"] for r in reply.json()["results"]]
    assert statuses == [412, 412, 422, 400, 200, 200], reply.json()
    assert reply.json()["results"][0]["conflict"]["remote_metadata"]["hash"] == sha(files[first])
    assert (server.root / first).read_bytes() == files[first]
    assert (server.root / "b/f3.txt").read_bytes() == new
    assert not (server.root / "b/bad.txt").exists()
    assert not [n for n in everything(server.root) if n.endswith(".tmp")]
    api.close()


def test_batch_download_streams_entries_in_order(server) -> None:
    api = Api(server.ports[0])
    texts = {
        f"d/log{i}.json": json.dumps({"n": i, "msg": "hello " * 50}).encode() for i in range(50)
    }
    entries = [({"path": p, "sha256": sha(d)}, d) for p, d in texts.items()]
    assert post(api, "batch/upload", batch(entries)).status == 200
    wanted = [*texts, "missing.txt", "d"]
    body = json.dumps({"paths": wanted}).encode()
    for headers in ({}, {"Accept-Encoding": "zstd"}):
        reply = api.call(
            "POST", "batch/download", body, {"Content-Type": "application/json", **headers}
        )
        assert reply.status == 200
        raw = reply.body
        if headers:
            assert reply.headers["content-encoding"] == "zstd"
            raw = compression.decompress(raw)
        else:
            assert "content-encoding" not in reply.headers
        parser = EntryParser(1 << 20)
        got = parser.feed(raw)
        parser.close()
        assert [h["path"] for h, _ in got] == wanted
        for header, data in got[:-2]:
            assert header["status"] == 200 and data == texts[header["path"]]
            assert header["sha256"] == hashlib.sha256(data).hexdigest()
        assert got[-2][0]["status"] == 404 and got[-1][0]["status"] == 400
    api.close()


def test_batch_download_never_reads_through_a_link(server) -> None:
    """The batch download serves a file from its index row when the disk still matches
    it. Moving an indexed folder (or file) out of the root and leaving a link in its
    place keeps inode, size and mtime: the very same bytes now sit behind a link. They
    must be refused, as the single download refuses them, not served as a match."""
    api = Api(server.ports[0])
    files = {"swap/a.txt": b"secret behind a folder link", "gone.txt": b"secret behind a file link"}
    entries = [({"path": p, "sha256": sha(d)}, d) for p, d in files.items()]
    assert post(api, "batch/upload", batch(entries)).status == 200
    outside = server.root.parent / "batch-outside"
    outside.mkdir()
    os.rename(server.root / "swap", outside / "swap")
    (server.root / "swap").symlink_to(outside / "swap")
    os.rename(server.root / "gone.txt", outside / "gone.txt")
    (server.root / "gone.txt").symlink_to(outside / "gone.txt")
    reply = api.call(
        "POST",
        "batch/download",
        json.dumps({"paths": list(files)}).encode(),
        {"Content-Type": "application/json"},
    )
    assert reply.status == 200
    parser = EntryParser(1 << 20)
    got = parser.feed(reply.body)
    parser.close()
    assert [h["path"] for h, _ in got] == list(files)
    for header, data in got:
        assert 400 <= header["status"] < 500, header
        assert b"secret" not in data
    assert b"secret" not in reply.body
    api.close()


def test_bad_batches_are_refused_and_leave_nothing(server) -> None:
    api = Api(server.ports[0])
    before = folder_view(server.root), everything(server.root)
    good = ({"path": "z/ok.txt", "sha256": sha(b"ok")}, b"ok")
    cut = batch([good])[:-5]
    assert post(api, "batch/upload", cut).status == 400
    no_end = header_line({"path": "z/x.txt", "size": 10, "sha256": sha(b"x")}) + b"short"
    assert post(api, "batch/upload", no_end).status == 400
    assert post(api, "batch/upload", b"not json\n").status == 400
    bomb = zstandard.ZstdCompressor(level=19).compress(
        header_line({"path": "z/bomb", "size": 64 << 20, "sha256": sha(b"")}) + b"\0" * (64 << 20)
    )
    reply = post(api, "batch/upload", bomb, Content_Encoding="zstd")
    assert reply.status in (400, 413), reply  # the entry is over the limit either way
    assert post(api, "batch/upload", b"x", Content_Encoding="br").status == 415
    # A cut batch may have committed whole entries before the cut, never a partial one.
    view, names = folder_view(server.root), everything(server.root)
    assert {k: v for k, v in view.items() if k != "z/ok.txt" and k != "z"} == before[0]
    assert not [n for n in names if n.endswith(".tmp")]
    huge = json.dumps({"paths": ["a"] * 10_001}).encode()
    assert api.call("POST", "batch/download", huge).status == 413
    assert api.call("GET", "batch/download").status == 405
    api.close()


def test_batch_upload_needs_write_access(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "ro"
    root.mkdir()
    with running_server(simple_config(port, sync_route(root)), tmp_path, [port]):
        api = Api(port)
        good = ({"path": "x.txt", "sha256": sha(b"x")}, b"x")
        assert post(api, "batch/upload", batch([good])).status == 403
        assert not (root / "x.txt").exists()
        api.close()
