"""Transfers end to end through a byte-counting TCP relay: zstd both ways for text,
identity for random data, and ``--compression off`` as the control."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.support.relay import byte_relay
from tests.synclient.harness import Client, SyncServer, tree

pytestmark = pytest.mark.timeout(120)


def log_lines(size: int, seed: int = 1) -> bytes:
    """JSON log lines like a web server writes (timestamps, ids, paths)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    total = 0
    while total < size:
        line = (
            json.dumps(
                {
                    "ts": 1_700_000_000 + rng.random() * 1e5,
                    "level": rng.choice(["info", "warn", "error"]),
                    "msg": rng.choice(["request done", "cache miss", "upstream slow"]),
                    "path": f"/api/v1/items/{rng.randrange(100_000)}",
                    "status": rng.choice([200, 200, 404, 500]),
                    "request_id": f"{rng.getrandbits(128):032x}",
                }
            ).encode()
            + b"\n"
        )
        out.append(line)
        total += len(line)
    return b"".join(out)


def relayed(server: SyncServer, port: int) -> SyncServer:
    view = SyncServer.__new__(SyncServer)
    view.__dict__.update(server.__dict__)
    view.port = port
    return view


def aged(root: Path) -> None:
    for path in root.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))


def test_text_travels_compressed_both_ways_and_random_data_as_is(
    server: SyncServer, tmp_path: Path
) -> None:
    text = log_lines(2_000_000)
    noise = os.urandom(1_000_000)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "app.log").write_bytes(text)
    aged(a)
    with byte_relay(server.port) as (port, counts):
        view = relayed(server, port)
        first = Client(view, a).once()
        assert first.returncode == 0, first.stderr
        assert counts.up < 0.3 * len(text), counts.up
        counts.reset()
        got = Client(view, b, "--initial-sync").once()
        assert got.returncode == 0, got.stderr
        assert counts.down < 0.3 * len(text), counts.down
        assert (b / "app.log").read_bytes() == text

        (a / "noise.bin").write_bytes(noise)
        aged(a)
        counts.reset()
        assert Client(view, a).once().returncode == 0
        assert Client(view, b).once().returncode == 0
        assert counts.up >= len(noise) and counts.down >= len(noise)
    assert tree(a) == tree(b) == tree(server.root)


def test_compression_off_sends_identity(server: SyncServer, tmp_path: Path) -> None:
    text = log_lines(300_000, seed=2)
    a = tmp_path / "a"
    a.mkdir()
    (a / "app.log").write_bytes(text)
    aged(a)
    with byte_relay(server.port) as (port, counts):
        result = Client(relayed(server, port), a, "--compression", "off").once()
        assert result.returncode == 0, result.stderr
        assert counts.up > len(text)
    assert (server.root / "app.log").read_bytes() == text


def test_many_small_files_take_a_few_batch_requests_each_way(
    server: SyncServer, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(600):
        path = a / f"d{i % 7}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1024))
    aged(a)
    with byte_relay(server.port, record=True) as (port, counts):
        view = relayed(server, port)
        result = Client(view, a).once()
        assert result.returncode == 0, result.stderr
        assert counts.requests(b"POST /api/upload") == 0
        assert 1 <= counts.requests(b"POST /api/batch/upload") <= 20
        counts.reset()
        result = Client(view, b, "--initial-sync").once()
        assert result.returncode == 0, result.stderr
        assert counts.requests(b"GET /api/download") == 0
        assert 1 <= counts.requests(b"POST /api/batch/download") <= 20
        counts.reset()
        # The old one-request-per-file path still works against the same server.
        (a / "late.txt").write_bytes(b"late")
        aged(a)
        assert Client(view, a, "--batch", "off").once().returncode == 0
        assert counts.requests(b"POST /api/upload") == 1
    assert tree(a) == tree(server.root)
    assert {k: v for k, v in tree(b).items()} == {
        k: v for k, v in tree(server.root).items() if k != "late.txt"
    }


def test_initial_sync_takes_few_requests_and_skips_what_cannot_help(
    server: SyncServer, tmp_path: Path
) -> None:
    """An initial sync of 2,000 small files and one large one: the small files come in
    a few batches (with 256 files in flight at a time they came in a dozen or more;
    the bulk path's batches grow from 100 entries: 100, 200, 400, 800, 500), the
    server is listed once (the check after the pass follows the journal instead of
    listing again), and the large file, with no local chunk to build it from, is
    downloaded whole without asking for its chunk tree (which made the server chunk the
    whole file for nothing)."""
    for i in range(2000):
        path = server.root / f"d{i % 10}" / f"f{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(512))
    (server.root / "big.bin").write_bytes(os.urandom(1 << 20))
    server.wait_indexed(120)
    b = tmp_path / "b"
    with byte_relay(server.port, record=True) as (port, counts):
        result = Client(relayed(server, port), b, "--initial-sync").once(timeout=300)
        assert result.returncode == 0, result.stderr
        assert 1 <= counts.requests(b"POST /api/batch/download") <= 5
        assert counts.requests(b"GET /api/list HTTP") == 1  # the full listing
        assert counts.requests(b"GET /api/chunks") == 0
        assert counts.requests(b"GET /api/download") == 1
    assert tree(b) == tree(server.root)


def test_a_corrupted_entry_in_a_bulk_batch_is_refused_and_the_rest_installed(
    server: SyncServer, tmp_path: Path
) -> None:
    """The initial sync's bulk path (one request, one install hop per batch): the wire
    flips bytes inside one file's entry. That file is refused (its bytes never reach
    the folder, not even in a temp file, and the pass reports it), every other file of
    the same batch is installed verified, and a clean second pass brings the refused
    file, so one entry's failure is its own."""
    marker = b"<flip-me>"
    for i in range(300):
        path = server.root / f"d{i % 3}" / f"f{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(2048))
    # Repeated throughout the file: any block of the stream holding part of the file
    # holds whole markers, wherever the relay's reads cut it.
    (server.root / "d1" / "victim.txt").write_bytes(marker * 400)
    server.wait_indexed(60)
    b = tmp_path / "b"

    def flip(data: bytes) -> bytes:
        return data.replace(marker, b"<flipped>")

    with byte_relay(server.port, down_rewrite=flip) as (port, _):
        result = Client(relayed(server, port), b, "--compression", "off", "--initial-sync").once()
    assert result.returncode != 0
    assert "victim.txt" in result.stderr
    wanted = {k: v for k, v in tree(server.root).items() if k != "d1/victim.txt"}
    assert tree(b) == wanted
    for path in b.rglob("*"):
        if path.is_file():
            assert b"<flipped>" not in path.read_bytes(), path
    assert Client(server, b).once().returncode == 0
    assert tree(b) == tree(server.root)
