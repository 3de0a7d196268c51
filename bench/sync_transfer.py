"""Sync transfer benchmark (not run in CI): compression, batches, latency, peak RSS.

    PYTHONPATH=. python bench/sync_transfer.py [--quick]

Against a real caddytw ``file_sync`` server on loopback, side by side in one run:

- compression: 22 MB of JSON log lines and 22 MB of random data, up (client A
  ``--once``) and down (client B ``--initial-sync``), bytes counted by a TCP relay
  between client and server, time with ``--compression auto`` and ``off``;
- initial sync (``--once --initial-sync``) of 10,000 x 4 KiB files and of one 1 GiB
  file, against an rsync daemon on the same data (``rsync -a --whole-file``), and
  with ``--fsync`` (rsync's writes made durable, as synclient's always are);
- A->B latency of a 3 KB file written and closed on A until the bytes are on B
  (median and p95);
- peak RSS of the clients (``wait4``) and of the server (``VmHWM``).

``--quick`` uses 2,000 small files, a 256 MiB big file and 30 latency samples.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synclient import (
    _big_file,
    arrival,
    rsync_time,
    run_measured,
    stop_clients_peak_rss,
)
from tests.support.relay import byte_relay
from tests.synclient.harness import Client, SyncServer, tree, wait_until

MB = 1_000_000


def server_peak_rss(server: SyncServer) -> int:
    """The server's peak RSS in MiB (``VmHWM``), read before it stops."""
    assert server.process is not None
    try:
        status = Path(f"/proc/{server.process.process.pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def log_lines(size: int) -> bytes:
    rng = random.Random(7)
    out: list[bytes] = []
    total = 0
    while total < size:
        line = (
            json.dumps(
                {
                    "ts": f"2026-12-04T23:{rng.randrange(60):02d}:{rng.random() * 60:06.3f}Z",
                    "level": rng.choice(["info", "info", "warn", "error"]),
                    "msg": rng.choice(["request done", "cache miss", "upstream slow"]),
                    "method": rng.choice(["GET", "POST"]),
                    "path": f"/api/v1/items/{rng.randrange(100_000)}",
                    "status": rng.choice([200, 200, 200, 404, 500]),
                    "duration_ms": round(rng.random() * 300, 3),
                    "request_id": f"{rng.getrandbits(128):032x}",
                }
            ).encode()
            + b"\n"
        )
        out.append(line)
        total += len(line)
    return b"".join(out)[:size]


def relayed(server: SyncServer, port: int) -> SyncServer:
    view = SyncServer.__new__(SyncServer)
    view.__dict__.update(server.__dict__)
    view.port = port
    return view


def compression_case(
    work: Path, name: str, data: bytes, mode: str, number: int = 0
) -> dict[str, float]:
    case = work / f"{name}-{mode}-{number}"
    case.mkdir()
    server = SyncServer(case).start()
    try:
        a = case / "a"
        a.mkdir()
        (a / f"{name}.bin").write_bytes(data)
        os.utime(a / f"{name}.bin", (1.6e9, 1.6e9))
        with byte_relay(server.port) as (port, counts):
            view = relayed(server, port)
            up_s, code, _ = run_measured(Client(view, a, "--compression", mode).command("--once"))
            assert code == 0
            up = counts.up
            counts.reset()
            down_s, code, _ = run_measured(
                Client(view, case / "b", "--compression", mode).command("--once", "--initial-sync")
            )
            assert code == 0
            down = counts.down
        assert (case / "b" / f"{name}.bin").read_bytes() == data
        return {"up": up, "down": down, "up_s": up_s, "down_s": down_s}
    finally:
        server.stop()


class BenchServer(SyncServer):
    """The server as deployed: the default rescan interval (the test harness rescans
    every 2 s, which on 10,000 files is a steady load of its own)."""

    def config(self) -> dict[str, Any]:
        config = super().config()
        for server in config["apps"]["http"]["servers"].values():
            for route in server["routes"]:
                for handler in route["handle"]:
                    handler.pop("rescan_interval", None)
        return config


def initial_sync(
    work: Path, label: str, populate: Callable[[Path], None], rounds: int, *args: str
) -> dict[str, float]:
    """``rounds`` initial syncs (``--once --initial-sync`` into an empty folder), each
    followed by an rsync daemon pull of the same tree, plain and with ``--fsync``,
    interleaved so that the load of a
    shared machine hits both alike. The server indexes its folder before the clock
    starts (rsync keeps no index; building one is the server's, not the sync's, cost).
    Medians in seconds, the peak RSS of client and server in MiB."""
    case = work / label.replace(" ", "-")
    case.mkdir()
    server = BenchServer(case)
    populate(server.root)
    server.start()
    ours: list[float] = []
    theirs: list[float] = []
    durable: list[float] = []
    client_rss = 0
    try:
        server.wait_indexed(900)
        for number in range(rounds):
            client = Client(server, case / f"client-{number}", *args)
            seconds, code, rss = run_measured(
                client.command("--once", "--initial-sync"), client.env()
            )
            assert code == 0, f"synclient exit {code}"
            assert tree(client.root) == tree(server.root), "trees differ after initial sync"
            shutil.rmtree(client.root)
            ours.append(seconds)
            client_rss = max(client_rss, rss)
            theirs.append(rsync_time(server.root, case))
            shutil.rmtree(case / "rsync-target", ignore_errors=True)
            durable.append(rsync_time(server.root, case, fsync=True))
            shutil.rmtree(case / "rsync-target", ignore_errors=True)
            print(
                f"  {label} round {number + 1}: synclient {seconds:.2f} s, "
                f"rsync daemon {theirs[-1]:.2f} s, with --fsync {durable[-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        server_rss = server_peak_rss(server)
    finally:
        server.stop()
    return {
        "ours": statistics.median(ours),
        "rsync": statistics.median(theirs),
        "rsync_fsync": statistics.median(durable),
        "client_rss": client_rss,
        "server_rss": server_rss,
    }


def initial_row(name: str, result: dict[str, float]) -> tuple[str, str, str]:
    ratio = result["ours"] / result["rsync"]
    durable = result["ours"] / result["rsync_fsync"]
    return (
        name,
        f"{result['ours']:.2f} s",
        f"rsync daemon {result['rsync']:.2f} s: **{ratio:.2f}x**; rsync --fsync "
        f"{result['rsync_fsync']:.2f} s: **{durable:.2f}x**; peak RSS client "
        f"{result['client_rss']:.0f} MiB, server {result['server_rss']:.0f} MiB",
    )


def latency(work: Path, count: int) -> tuple[list[float], int, int, int]:
    (work / "latency").mkdir()
    server = SyncServer(work / "latency")
    (server.root / "seed.txt").write_bytes(b"seed")
    server.start()
    a = Client(server, work / "lat-a").start()
    b = Client(server, work / "lat-b").start()
    samples: list[float] = []
    try:
        for client in (a, b):
            seed = client.root / "seed.txt"
            wait_until(seed.exists, 60, "first pass")
        time.sleep(1.0)
        for i in range(count):
            data = os.urandom(1500).hex().encode()  # 3 KB
            name = f"lat/{i % 10}.txt"
            (a.root / "lat").mkdir(exist_ok=True)
            start = time.monotonic()
            (a.root / name).write_bytes(data)
            samples.append(arrival(b.root / name, data, start, f"change {i}"))
            time.sleep(0.05)
        server_rss = server_peak_rss(server)
    finally:
        rss = stop_clients_peak_rss(a, b)
        server.stop()
    return samples, rss[0], rss[1], server_rss


def small_files(root: Path, count: int) -> None:
    for i in range(count):
        folder = root / f"d{i % 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_bytes(os.urandom(4096))


def zstd_levels(text: bytes, noise: bytes) -> list[tuple[str, str, str]]:
    """In-process zstd on the bench's text and random data per level (best of 3):
    what ``caddytw.sync.compression.LEVEL`` is chosen by, and what the sample check
    (:func:`~caddytw.sync.compression.compressible`) costs on data it turns down."""
    import zstandard

    from caddytw.sync.compression import SAMPLE_SLICE, compressible

    rows = []
    for level in (1, 3, 6):
        packed = b""
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            packed = zstandard.ZstdCompressor(level=level).compress(text)
            best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        zstandard.ZstdDecompressor().decompress(packed)
        unpack = time.perf_counter() - start
        rows.append(
            (
                f"zstd level {level}, 22 MB JSON log lines (in process)",
                f"{len(packed) / len(text):.1%} of the size",
                f"compress {len(text) / best / MB:.0f} MB/s, "
                f"decompress {len(text) / unpack / MB:.0f} MB/s",
            )
        )
    start = time.perf_counter()
    for offset in range(0, 64 * SAMPLE_SLICE, SAMPLE_SLICE):
        compressible(noise[offset : offset + SAMPLE_SLICE])
    each = (time.perf_counter() - start) / 64
    rows.append(
        (
            "sample check on random data (16 KiB, zstd level 1)",
            f"{each * 1e6:.0f} µs per sample",
            "answers no: random bodies are sent as they are",
        )
    )
    return rows


class Rows(list[tuple[str, str, str]]):
    """The table so far; each row also goes to stderr at once (a late failure keeps
    what was measured)."""

    def append(self, row: tuple[str, str, str]) -> None:
        super().append(row)
        print(f"| {row[0]} | {row[1]} | {row[2]} |", file=sys.stderr, flush=True)


def main() -> None:
    options = argparse.ArgumentParser()
    options.add_argument("--quick", action="store_true", help="smaller sizes")
    options.add_argument(
        "--only",
        choices=["compression", "initial", "small", "latency"],
        default=None,
        help="one part; small: only the initial sync of many small files",
    )
    options.add_argument(
        "--rounds", type=int, default=3, help="interleaved initial-sync rounds (median)"
    )
    options.add_argument("--unbatched", action="store_true", help="also time --batch off")
    args = options.parse_args()
    small, big, changes = (2000, 256 << 20, 30) if args.quick else (10_000, 1 << 30, 100)
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="sync-transfer-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "latency"):
            samples, rss_a, rss_b, server_rss = latency(work, changes)
            samples.sort()
            median = statistics.median(samples) * 1000
            p95 = samples[int(0.95 * (len(samples) - 1))] * 1000
            rows.append(
                (
                    f"A->B latency, 3 KB file, {changes} changes",
                    f"median {median:.0f} ms, p95 {p95:.0f} ms",
                    f"peak RSS: clients {rss_a} / {rss_b} MiB, server {server_rss} MiB",
                )
            )
        if args.only in (None, "compression"):
            text = log_lines(22 * MB)
            noise = os.urandom(22 * MB)
            for row in zstd_levels(text, noise):
                rows.append(row)
            for name, data in (("JSON log lines", text), ("random data", noise)):
                # auto and off interleaved, median times: a 5% difference is far below
                # what a shared machine's load does to one run.
                runs: dict[str, list[dict[str, float]]] = {"auto": [], "off": []}
                for number in range(args.rounds):
                    for mode in ("auto", "off"):
                        slug = name.replace(" ", "-")
                        runs[mode].append(compression_case(work, slug, data, mode, number))
                on, off = (
                    {key: statistics.median(r[key] for r in runs[mode]) for key in runs[mode][0]}
                    for mode in ("auto", "off")
                )
                rows.append(
                    (
                        f"22 MB {name}: bytes on the wire up / down",
                        f"{on['up'] / MB:.1f} / {on['down'] / MB:.1f} MB "
                        f"({on['up'] / len(data):.0%} / {on['down'] / len(data):.0%})",
                        f"off: {off['up'] / MB:.1f} / {off['down'] / MB:.1f} MB",
                    )
                )
                rows.append(
                    (
                        f"22 MB {name}: time up / down (median of {args.rounds})",
                        f"{on['up_s']:.2f} / {on['down_s']:.2f} s",
                        f"off: {off['up_s']:.2f} / {off['down_s']:.2f} s "
                        f"(auto/off: {on['up_s'] / off['up_s']:.2f}x / "
                        f"{on['down_s'] / off['down_s']:.2f}x)",
                    )
                )
        if args.only in (None, "initial", "small"):
            result = initial_sync(
                work, f"{small} x 4 KiB", lambda root: small_files(root, small), args.rounds
            )
            rows.append(initial_row(f"initial sync, {small:,} x 4 KiB files", result))
            if args.unbatched:
                result = initial_sync(
                    work,
                    f"{small} x 4 KiB unbatched",
                    lambda root: small_files(root, small),
                    1,
                    "--batch",
                    "off",
                )
                rows.append(initial_row(f"initial sync, {small:,} x 4 KiB, --batch off", result))
        if args.only in (None, "initial"):
            result = initial_sync(
                work, f"one {big >> 20} MiB", lambda root: _big_file(root, big), args.rounds
            )
            rows.append(initial_row(f"initial sync, one {big >> 20} MiB file", result))
    load = os.getloadavg()
    print(f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)\n")
    print("| measure | synclient | reference / notes |\n| --- | --- | --- |")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    main()
