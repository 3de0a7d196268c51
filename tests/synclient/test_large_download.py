"""A large download's body is written and hashed by threads of its own
(:mod:`synclient.bodywriter`): memory stays bounded while the body outruns the disk, and a
disk that refuses the bytes fails the download without leaving a partial file behind."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import REPO, server_env
from tests.synclient.harness import Client, SyncServer, tree

pytestmark = pytest.mark.timeout(120)

#: Downloads one file through ``synclient.remote.Remote`` on a real reactor and prints
#: the writer's queue peak and the process's RSS before and at its peak (``/proc``).
DOWNLOAD = """
import json, sys
from pathlib import Path
from twisted.internet import task
from twisted.internet.defer import Deferred
from synclient.remote import Remote

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

async def main(reactor):
    server, path, target, sha, size = sys.argv[1:6]
    remote = Remote(server, "large-download-test", reactor=reactor)
    before = status("VmRSS:")
    temp = await remote.download(path, Path(target), sha, int(size))
    peak = status("VmHWM:")
    await remote.close()
    print(json.dumps({"temp": str(temp), "queued": remote.writer_peak,
                      "before": before, "peak": peak}))

task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""


def test_a_64_mib_download_keeps_its_writer_queue_and_memory_bounded(
    server: SyncServer, tmp_path: Path
) -> None:
    """64 MiB of random bytes from a real server: the bytes waiting for the writer
    never exceed the pause mark plus one hand-off and one socket read, the process grows
    by far less than the file, and the temp file holds the verified body (fsynced; the
    caller renames it)."""
    from synclient.bodywriter import HANDOFF, HIGH_WATER
    from synclient.remote import READ_SIZE

    size = 64 << 20
    data = os.urandom(size)
    (server.root / "big.bin").write_bytes(data)
    server.wait_indexed(60)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "client").mkdir()
    target = tmp_path / "client" / "big.bin"
    result = subprocess.run(
        [sys.executable, "-c", DOWNLOAD, server.url, "big.bin", str(target), sha, str(size)],
        env=server_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 < report["queued"] <= HIGH_WATER + HANDOFF + READ_SIZE
    assert report["peak"] - report["before"] < 40 << 20, report
    temp = Path(report["temp"])
    assert temp.parent == target.parent and temp.name.endswith(".tmp")
    assert hashlib.sha256(temp.read_bytes()).hexdigest() == sha
    assert not target.exists()  # nothing visible before the caller's rename


def _small_files_only() -> None:
    """In the client before exec: files beyond 2 MiB cannot be written (``EFBIG``;
    Python ignores ``SIGXFSZ``), a disk that fills up mid-download."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))


def test_a_disk_error_mid_download_fails_it_and_leaves_no_partial_file(
    server: SyncServer, tmp_path: Path
) -> None:
    """The writer thread cannot write past 2 MiB of an 8 MiB download: the pass reports
    the disk's error, the folder holds neither the file nor its temp file, and a pass
    with room brings the file whole."""
    (server.root / "big.bin").write_bytes(os.urandom(8 << 20))
    (server.root / "small.txt").write_bytes(b"small")
    server.wait_indexed(60)
    client = Client(server, tmp_path / "b")
    result = subprocess.run(
        client.command("--once", "--initial-sync"),
        env=client.env(),
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=_small_files_only,
    )
    assert result.returncode != 0
    assert "File too large" in result.stderr, result.stderr
    left = sorted(p.name for p in client.root.iterdir() if not p.name.startswith(".synclient"))
    assert "big.bin" not in left
    assert not [name for name in left if name.endswith(".tmp")], left
    assert client.once().returncode == 0
    assert tree(client.root) == tree(server.root)
