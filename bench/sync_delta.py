"""Bytes on the wire for small edits of a large file: synclient's delta transfers side by
side with an rsync daemon (not part of CI).

    PYTHONPATH=. python bench/sync_delta.py [--mib 64] [--no-delta]

A real ``twistd caddy`` ``file_sync`` server, two ``synclient --once`` clients (A
uploads, B downloads) and a Debian ``rsync --daemon``, each behind a counting TCP relay
(:mod:`tests.support.relay`). The file is synced once whole; then for each edit (1 byte
changed in the middle, 1 KiB inserted in the middle, 1 MiB appended) it measures the
bytes (both directions, headers included) of A's upload run, B's download run, an
``rsync`` upload of the edited file over the old one on the daemon, and an ``rsync``
download of it over the old local copy (``--ignore-times --no-whole-file``: rsync's delta
algorithm every time, as synclient decides by hash). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import rsync_daemon

from tests.support.relay import Relay
from tests.synclient.harness import Client, SyncServer


def run_once(client: Client, relay: Relay, extra: list[str]) -> int:
    relay.reset()
    done = subprocess.run(
        [
            relay.url if part == client.server.url else part
            for part in client.command("--once", *extra)
        ],
        env=client.env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"synclient failed:\n{done.stdout}{done.stderr}")
    up, down = relay.reset()
    return up + down


def rsync_run(relay: Relay, *argv: str) -> int:
    relay.reset()
    subprocess.run(["rsync", "-t", "--ignore-times", "--no-whole-file", *argv], check=True)
    up, down = relay.reset()
    return up + down


EDITS = ("1-byte change", "1 KiB insert", "1 MiB append")


def apply_edit(path: Path, edit: str, rng: random.Random) -> None:
    data = path.read_bytes()
    middle = len(data) // 2
    if edit == "1-byte change":
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
    elif edit == "1 KiB insert":
        data = data[:middle] + rng.randbytes(1024) + data[middle:]
    else:
        data += rng.randbytes(1024 * 1024)
    path.write_bytes(data)


def measure(
    work: Path,
    server: SyncServer,
    relay: Relay,
    rrelay: Relay,
    mib: int,
    extra: list[str],
    rng: random.Random,
) -> list[tuple[str, int, int, int, int]]:
    """Sync the file once, then each edit: (edit, synclient up, synclient down, rsync
    up, rsync down) bytes."""
    a, b = Client(server, work / "a"), Client(server, work / "b")
    for client in (a, b):
        client.root.mkdir()
    big = a.root / "big.bin"
    big.write_bytes(rng.randbytes(mib * 1024 * 1024))
    url = f"rsync://127.0.0.1:{rrelay.port}/m/big.bin"
    local = work / "rsync-local.bin"
    first_up = run_once(a, relay, extra)
    first_down = run_once(b, relay, extra)
    rsync_run(rrelay, str(big), url)
    shutil.copy(big, local)
    print(f"initial sync: synclient {first_up:,} bytes (upload run), {first_down:,} (download)")
    rows = []
    for edit in EDITS:
        apply_edit(big, edit, rng)
        up = run_once(a, relay, extra)
        down = run_once(b, relay, extra)
        assert (b.root / "big.bin").read_bytes() == big.read_bytes()
        rsync_up = rsync_run(rrelay, str(big), url)  # the daemon holds the old version
        rsync_down = rsync_run(rrelay, url, str(local))  # the local copy is the old one
        rows.append((edit, up, down, rsync_up, rsync_down))
    rrelay.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--no-delta", action="store_true", help="synclient without deltas")
    args = parser.parse_args()
    extra = ["--no-delta"] if args.no_delta else []
    rng = random.Random(64)
    work = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    server = SyncServer(work).start()
    relay = Relay(server.port)
    module = work / "rsync-root"
    module.mkdir()
    try:
        with rsync_daemon(work, module) as rport:
            rows = measure(work, server, relay, Relay(rport), args.mib, extra, rng)
    finally:
        relay.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    mode = "whole files (--no-delta)" if args.no_delta else "delta"
    print(f"\nBytes on the wire (both directions), {args.mib} MiB file, synclient {mode}:\n")
    print("| edit | synclient upload | synclient download | rsync upload | rsync download |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for edit, up, down, rup, rdown in rows:
        print(f"| {edit} | {up:,} | {down:,} | {rup:,} | {rdown:,} |")


if __name__ == "__main__":
    main()
