"""A file closed after writing travels at once; only files still open wait to settle.

Both clients run with a 30 s settle window and a 60 s safety-net pass: a file that
arrives on the other side well before that can only have come through the
close-after-write event path (the scanner would otherwise call it unsettled and retry
after 30 s). No timing is asserted beyond that; the milliseconds are in bench/.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.synclient.harness import Client, SyncServer, wait_until

pytestmark = pytest.mark.timeout(120)

LONG = ("--settle", "30", "--interval", "60")


def test_closed_file_skips_the_settle_window_open_file_waits(
    server: SyncServer, tmp_path: Path
) -> None:
    (server.root / "seed.txt").write_bytes(b"seed")
    os.utime(server.root / "seed.txt", (1_600_000_000, 1_600_000_000))
    server.wait_indexed()
    a = Client(server, tmp_path / "a").start(*LONG)
    b = Client(server, tmp_path / "b").start(*LONG)
    try:
        for client in (a, b):  # the first pass is over: the watcher runs (it starts first)
            wait_until(lambda c=client: (c.root / "seed.txt").exists(), 30, "first pass")
        data = os.urandom(3000)
        (a.root / "note.txt").write_bytes(data)  # open, write, close
        wait_until(lambda: (b.root / "note.txt").exists(), 15, "note.txt on b before 30 s")
        assert (b.root / "note.txt").read_bytes() == data

        with open(a.root / "growing.log", "wb") as handle:  # still open for writing
            handle.write(b"first part\n")
            handle.flush()
            time.sleep(2.0)
            assert not (server.root / "growing.log").exists()
            handle.write(b"second part\n")
        wait_until(lambda: (b.root / "growing.log").exists(), 15, "growing.log after close")
        assert (b.root / "growing.log").read_bytes() == b"first part\nsecond part\n"
    finally:
        a.stop()
        b.stop()
