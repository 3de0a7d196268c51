"""End to end: a real ``file_sync`` server process and real ``synclient`` processes.

Every test compares whole trees by content hash; nothing is mocked. Continuous clients
run with ``--interval 3`` so a missed event would still be repaired quickly, but the
convergence waits are what the watcher and the events socket deliver.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

import pytest

from tests.synclient.harness import Client, SyncServer, converged, tree, wait_until

pytestmark = pytest.mark.timeout(120)


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def age(root: Path) -> None:
    """Backdate every file so the settle window does not hold them back."""
    when = time.time() - 60
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (when, when))


def ok(result: object) -> None:
    code = getattr(result, "returncode", None)
    assert code == 0, f"exit {code}\n{getattr(result, 'stderr', '')}"


def test_initial_sync_merges_both_sides(server: SyncServer, tmp_path: Path) -> None:
    write(server.root, "docs/report.txt", b"server report")
    write(server.root, "\u00e9t\u00e9/\u65e5\u672c.txt", "unicode \u2603".encode())
    write(server.root, "empty.bin", b"")
    write(server.root, "same.txt", b"identical")
    write(server.root, "clash.txt", b"server side")
    (server.root / "empty-folder").mkdir()
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "a"
    write(local, "same.txt", b"identical")
    write(local, "clash.txt", b"client side")
    write(local, "mine/new.txt", b"only here")
    age(local)
    client = Client(server, local)
    ok(client.once("--initial-sync"))
    files = tree(local)
    assert files == tree(server.root)
    assert files["docs/report.txt"] == hashlib.sha256(b"server report").hexdigest()
    assert files["clash.txt"] == hashlib.sha256(b"client side").hexdigest()  # keep-client
    copies = [p for p in files if p.startswith("clash.sync-conflict-")]
    assert len(copies) == 1 and copies[0].endswith(".txt")
    assert files[copies[0]] == hashlib.sha256(b"server side").hexdigest()
    assert (local / "empty-folder").is_dir()
    assert (local / "empty.bin").read_bytes() == b""
    # A second pass has nothing to do and reports success.
    ok(client.once())
    assert tree(local) == files


def test_offline_conflicts_keep_both_versions(server: SyncServer, tmp_path: Path) -> None:
    a, b = Client(server, tmp_path / "a"), Client(server, tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(a.root, "edit.txt", b"v0")
    write(a.root, "gone.txt", b"v0")
    age(a.root)
    ok(a.once())
    ok(b.once())
    # Both edit the same file; a deletes what b edits.
    write(a.root, "edit.txt", b"from a")
    write(b.root, "edit.txt", b"from b")
    (a.root / "gone.txt").unlink()
    write(b.root, "gone.txt", b"b edited it")
    age(a.root)
    age(b.root)
    ok(a.once())
    ok(b.once())
    ok(a.once())
    assert converged(a.root, b.root, server.root)
    files = tree(a.root)
    hashes = sorted(files.values())
    assert hashlib.sha256(b"from a").hexdigest() in hashes
    assert hashlib.sha256(b"from b").hexdigest() in hashes
    assert files["gone.txt"] == hashlib.sha256(b"b edited it").hexdigest()
    # keep-client: the client that synced last keeps the name.
    assert files["edit.txt"] == hashlib.sha256(b"from b").hexdigest()


def test_keep_server_strategy(server: SyncServer, tmp_path: Path) -> None:
    write(server.root, "f.txt", b"server")
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "a"
    write(local, "f.txt", b"client")
    age(local)
    ok(Client(server, local, "--conflict", "keep-server").once())
    files = tree(local)
    assert files["f.txt"] == hashlib.sha256(b"server").hexdigest()
    assert hashlib.sha256(b"client").hexdigest() in files.values()
    assert files == tree(server.root)


def test_two_live_clients_converge_after_random_changes(server: SyncServer, tmp_path: Path) -> None:
    a = Client(server, tmp_path / "a").start()
    b = Client(server, tmp_path / "b").start()
    try:
        rng = random.Random(5)
        names = [f"d{i % 3}/f{i}.txt" for i in range(12)] + ["top.bin", "\u00fcml\u00e4ut.txt"]
        for round_ in range(4):
            for client in (a, b):
                for _ in range(6):
                    _random_change(rng, client.root, names)
            wait_until(lambda: converged(a.root, b.root, server.root), 30, f"convergence {round_}")
        # Case-only rename.
        (a.root / "CaseTest.txt").write_bytes(b"case")
        wait_until(lambda: (b.root / "CaseTest.txt").exists(), 20, "case file")
        os.rename(a.root / "CaseTest.txt", a.root / "casetest.txt")
        wait_until(
            lambda: converged(a.root, b.root, server.root) and (b.root / "casetest.txt").exists(),
            20,
            "case-only rename",
        )
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in a.output() + b.output()


def _random_change(rng: random.Random, root: Path, names: list[str]) -> None:
    existing = [n for n in names if (root / n).is_file()]
    choice = rng.random()
    if existing and choice < 0.2:
        (root / rng.choice(existing)).unlink()
    elif existing and choice < 0.35:
        source = rng.choice(existing)
        target = rng.choice([n for n in names if n not in existing] or [source])
        if target != source:
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / source, root / target)
    else:
        write(root, rng.choice(names), rng.randbytes(rng.choice([0, 10, 5000])))


def test_live_latency_and_server_restart(server: SyncServer, tmp_path: Path) -> None:
    a = Client(server, tmp_path / "a").start()
    b = Client(server, tmp_path / "b").start()
    try:
        wait_until(lambda: (a.root / ".synclient").exists(), 10, "client a state")
        write(a.root, "hello.txt", b"hello")
        wait_until(lambda: (b.root / "hello.txt").exists(), 10, "hello on b")
        assert (b.root / "hello.txt").read_bytes() == b"hello"
        server.stop()
        write(a.root, "while-down.txt", b"written while the server was down")
        (a.root / "hello.txt").unlink()
        time.sleep(1.0)
        server.start()
        wait_until(
            lambda: (b.root / "while-down.txt").exists() and not (b.root / "hello.txt").exists(),
            30,
            "changes made while the server was down",
        )
        wait_until(lambda: converged(a.root, b.root, server.root), 20, "convergence")
    finally:
        a.stop()
        b.stop()


def test_killed_mid_download_leaves_no_partial_file_and_resumes(
    server: SyncServer, tmp_path: Path
) -> None:
    data = random.Random(1).randbytes(1 << 20) * 96
    write(server.root, "big.bin", data)
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "a"
    local.mkdir()
    client = Client(server, local).start()
    try:
        wait_until(
            lambda: any(p.name.endswith(".tmp") and p.stat().st_size > 0 for p in local.iterdir()),
            30,
            "a partial download",
        )
        client.kill()
        assert not (local / "big.bin").exists()
        partial = [p for p in local.iterdir() if p.name.endswith(".tmp")]
        assert partial and partial[0].stat().st_size < len(data)
    finally:
        client.kill()
    ok(client.once())
    assert (local / "big.bin").read_bytes() == data
    assert not [p for p in local.iterdir() if p.name.endswith(".tmp")]


def test_mass_deletion_is_refused(server: SyncServer, tmp_path: Path) -> None:
    local = tmp_path / "a"
    for i in range(80):
        write(local, f"f{i:03}.txt", b"%d" % i)
    age(local)
    client = Client(server, local)
    ok(client.once())
    for i in range(80):
        (local / f"f{i:03}.txt").unlink()
    result = client.once()
    assert result.returncode == 6, result.stderr
    assert "refusing to delete" in result.stderr
    assert len(tree(server.root)) == 80
    ok(client.once("--allow-mass-delete"))
    assert tree(server.root) == {}


def test_many_files(server: SyncServer, tmp_path: Path) -> None:
    """10,000 files in one initial sync (about 15 s on 2 busy cores; 20,000 took twice
    that, too long for CI), then a second pass that finds nothing to do."""
    for i in range(10_000):
        write(server.root, f"d{i % 100}/f{i}.txt", b"file %d" % i)
    age(server.root)
    server.wait_indexed(60)
    local = tmp_path / "a"
    client = Client(server, local)
    ok(client.once("--initial-sync", timeout=100))
    expected = tree(server.root)
    assert len(expected) == 10_000
    assert tree(local) == expected
    ok(client.once(timeout=60))


def test_cli_errors(tmp_path: Path, server: SyncServer) -> None:
    local = tmp_path / "a"
    local.mkdir()
    missing = Client(server, tmp_path / "missing").once()
    assert missing.returncode == 5 and "does not exist" in missing.stderr
    down = SyncServer(tmp_path / "down" if (tmp_path / "down").mkdir() is None else tmp_path)
    unreachable = Client(down, local).once()
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_bearer_tokens(tmp_path: Path) -> None:
    token = "a-long-enough-secret-token"
    server = SyncServer(tmp_path, clients=[{"id": "laptop", "token": token}]).start()
    try:
        write(server.root, "secret.txt", b"for token holders")
        age(server.root)
        server.wait_indexed()
        local = tmp_path / "a"
        local.mkdir()
        refused = Client(server, local, "--token", "wrong-token-wrong-token").once()
        assert refused.returncode == 4 and "refused the token" in refused.stderr
        assert "Traceback" not in refused.stderr
        ok(Client(server, local, "--token", token).once())
        assert (local / "secret.txt").read_bytes() == b"for token holders"
    finally:
        server.stop()


def test_killed_mid_upload_leaves_no_partial_file_on_the_server(
    server: SyncServer, tmp_path: Path
) -> None:
    data = random.Random(2).randbytes(1 << 20) * 96
    local = tmp_path / "a"
    write(local, "up.bin", data)
    age(local)
    client = Client(server, local).start()
    try:
        wait_until(
            lambda: any(
                p.name.endswith(".tmp") and p.stat().st_size > 0 for p in server.root.iterdir()
            ),
            30,
            "a partial upload on the server",
        )
        client.kill()
        assert not (server.root / "up.bin").exists()
    finally:
        client.kill()
    ok(client.once())
    assert (server.root / "up.bin").read_bytes() == data


def test_twistd_plugin_runs_continuous_sync(server: SyncServer, tmp_path: Path) -> None:
    import signal
    import subprocess

    from tests.support.server import TWISTD, server_env

    write(server.root, "via-twistd.txt", b"plugin")
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "t"
    local.mkdir()
    command = [*TWISTD, "-n", "--pidfile=", "synclient", "--server", server.url]
    process = subprocess.Popen(
        [*command, "--local-path", str(local)],
        env={**server_env(), "XDG_DATA_HOME": str(tmp_path / "xdg")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (local / "via-twistd.txt").exists(), 30, "download via twistd")
        write(local, "from-twistd.txt", b"up")
        wait_until(lambda: (server.root / "from-twistd.txt").exists(), 30, "upload via twistd")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
            raise
    assert (local / "via-twistd.txt").read_bytes() == b"plugin"


def test_continuous_client_stops_with_status_5_when_its_folder_disappears(
    server: SyncServer, tmp_path: Path
) -> None:
    write(server.root, "keep/me.txt", b"server copy")
    age(server.root)
    server.wait_indexed()
    local = tmp_path / "a"
    client = Client(server, local).start()
    try:
        wait_until(lambda: (local / "keep/me.txt").exists(), 20, "the first download")
        os.rename(local, tmp_path / "unmounted")  # the folder vanishes, as on unmount
        assert client.process is not None
        code = client.process.wait(timeout=30)
    finally:
        client.kill()
    assert code == 5, client.output()
    assert "disappeared" in client.output() or "is gone" in client.output()
    assert "Traceback" not in client.output()
    assert not local.exists()  # never recreated
    assert tree(server.root) == {"keep/me.txt": hashlib.sha256(b"server copy").hexdigest()}


def test_once_stops_with_status_5_when_the_folder_disappears_mid_run(
    server: SyncServer, tmp_path: Path
) -> None:
    import subprocess

    from tests.support.server import REPO, server_env

    for i in range(1500):
        write(server.root, f"d{i % 15}/f{i}.txt", b"file %d" % i)
    age(server.root)
    server.wait_indexed()
    before = tree(server.root)
    local = tmp_path / "a"
    process = subprocess.Popen(
        Client(server, local).command("--once", "--initial-sync"),
        env={**server_env(), "XDG_DATA_HOME": str(tmp_path / "xdg")},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (local / "d0").is_dir(), 30, "the download to start")
        os.rename(local, tmp_path / "unmounted")
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 5, err[-2000:]
    assert "disappeared" in err or "is gone" in err
    assert "Traceback" not in err
    assert not local.exists()
    assert tree(server.root) == before
