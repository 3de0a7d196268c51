"""synclient benchmark (not run in CI): latency, initial sync throughput, peak RSS.

    PYTHONPATH=. python bench/synclient.py [--quick]

Measures, against a real caddytw ``file_sync`` server on loopback:

- A->B latency: a file written on client A until the same bytes are on client B
  (median and p95 over 100 changes);
- initial sync (``synclient --once --initial-sync``) of 10,000 small files and of one
  1 GiB file, against ``rsync`` (daemon mode) over loopback on the same data;
- the clients' peak RSS (``wait4`` rusage of each client process).

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.ports import free_port, wait_for_port
from tests.support.server import REPO, server_env
from tests.synclient.harness import Client, SyncServer, tree, wait_until


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run ``command`` (in ``env``, by default the servers'); return (seconds, exit
    status, peak RSS in MiB)."""
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        env=env or server_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.stderr.write(process.stderr.read().decode() if process.stderr else "")
    return elapsed, process.returncode, usage.ru_maxrss // 1024


def rsync_time(source: Path, work: Path, fsync: bool = False) -> float:
    """Seconds for an rsync daemon pull of ``source``; with ``fsync``, rsync's
    ``--fsync`` (every written file made durable, as synclient always does: the
    like-for-like figure, since plain rsync leaves its writes in the page cache)."""
    port = free_port()
    conf = work / "rsyncd.conf"
    conf.write_text(
        f"use chroot = no\n[data]\npath = {source}\nread only = yes\nexclude = .caddytw-sync\n"
    )
    daemon = subprocess.Popen(
        [
            "rsync",
            "--daemon",
            "--no-detach",
            f"--port={port}",
            f"--config={conf}",
            "--address=127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 10)
        target = work / "rsync-target"
        shutil.rmtree(target, ignore_errors=True)
        start = time.monotonic()
        options = ["-a", "--whole-file", *(["--fsync"] if fsync else [])]
        subprocess.run(
            ["rsync", *options, f"rsync://127.0.0.1:{port}/data/", str(target)],
            check=True,
        )
        return time.monotonic() - start
    finally:
        daemon.terminate()
        daemon.wait(10)


def stop_clients_peak_rss(*clients: Client) -> list[int]:
    """Stop each running client and return its peak RSS in MiB (from ``wait4``)."""
    rss = []
    for client in clients:
        assert client.process is not None
        pid = client.process.pid
        client.process.terminate()
        _pid, _status, usage = os.wait4(pid, 0)
        client.process = None
        rss.append(usage.ru_maxrss // 1024)
    return rss


def arrival(target: Path, data: bytes, start: float, what: str, limit: float = 30) -> float:
    """Seconds from ``start`` until ``target`` holds ``data`` (polled every ms)."""
    while True:
        try:
            if target.read_bytes() == data:
                return time.monotonic() - start
        except FileNotFoundError:
            pass
        if time.monotonic() - start > limit:
            raise RuntimeError(f"{what} did not arrive")
        time.sleep(0.001)


def latency(server: SyncServer, work: Path, count: int) -> tuple[list[float], int, int]:
    a = Client(server, work / "lat-a").start()
    b = Client(server, work / "lat-b").start()
    samples: list[float] = []
    try:
        wait_until(
            lambda: (a.root / ".synclient").exists() and (b.root / ".synclient").exists(),
            20,
            "clients",
        )
        time.sleep(1.5)
        for i in range(count):
            data = f"change {i} {time.time()}".encode()
            target = b.root / f"lat/{i % 10}.txt"
            start = time.monotonic()
            path = a.root / f"lat/{i % 10}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            samples.append(arrival(target, data, start, f"change {i}"))
    finally:
        rss = stop_clients_peak_rss(a, b)
    return samples, rss[0], rss[1]


def main() -> None:
    options = argparse.ArgumentParser()
    options.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = options.parse_args()
    small, big, changes = (1000, 64 << 20, 20) if args.quick else (10_000, 1 << 30, 100)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="synclient-bench-") as tmp:
        work = Path(tmp)
        server = SyncServer(work).start()
        try:
            samples, rss_a, rss_b = latency(server, work, changes)
            samples.sort()
            rows.append(
                (
                    f"A->B latency, median of {changes}",
                    f"{statistics.median(samples) * 1000:.0f} ms",
                )
            )
            rows.append(
                (
                    f"A->B latency, p95 of {changes}",
                    f"{samples[int(0.95 * (len(samples) - 1))] * 1000:.0f} ms",
                )
            )
            rows.append(("peak RSS, live clients A / B", f"{rss_a} / {rss_b} MiB"))
        finally:
            server.stop()
        for label, populate in (
            (f"{small} small files", lambda root: _small_files(root, small)),
            (f"one {big >> 20} MiB file", lambda root: _big_file(root, big)),
        ):
            case = work / label.replace(" ", "-")
            case.mkdir()
            server = SyncServer(case)
            populate(server.root)
            server.start()
            try:
                local = case / "client"
                seconds, code, rss = run_measured(
                    Client(server, local).command("--once", "--initial-sync")
                )
                assert code == 0, f"synclient exit {code}"
                assert tree(local) == tree(server.root), "trees differ after initial sync"
                reference = rsync_time(server.root, case)
                rows.append(
                    (f"initial sync, {label}: synclient", f"{seconds:.2f} s (peak RSS {rss} MiB)")
                )
                rows.append((f"initial sync, {label}: rsync daemon", f"{reference:.2f} s"))
            finally:
                server.stop()
    print("| measure | result |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


def _small_files(root: Path, count: int) -> None:
    for i in range(count):
        folder = root / f"d{i % 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_bytes(os.urandom(64 + i % 4000))


def _big_file(root: Path, size: int) -> None:
    with open(root / "big.bin", "wb") as handle:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            handle.write(chunk)
            left -= len(chunk)


if __name__ == "__main__":
    main()
