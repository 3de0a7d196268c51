"""``twistd caddy --workers 2``: both workers serve one port, a killed worker is
replaced without the service stopping, SIGTERM stops everything."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.ports import free_port
from tests.support.server import TWISTD, server_env, simple_config, start_server


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def threads_left(pid: int) -> bool:
    """Whether any thread of ``pid`` is still running: a killed process shows ``Z`` as
    soon as its main thread is gone, but its sockets close only when its last thread
    has exited, and a connection the kernel hands to its socket meanwhile is reset."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def wait_until(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def index_of(pid: int) -> bytes:
    """A worker's number, from its environment."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"CADDYTW_WORKER_INDEX="):
            return item.partition(b"=")[2]
    raise AssertionError(f"{pid} is not a worker")


def worker_serving(url: str, index: bytes, timeout: float = 30.0) -> bool:
    """Whether worker ``index`` answers on ``url`` (each answers with its number)."""
    return wait_until(lambda: get(url) == index, timeout)


def test_workers_share_the_port_survive_a_crash_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    routes = [{"handle": [{"handler": "static_response", "body": "{env.CADDYTW_WORKER_INDEX}"}]}]
    config = simple_config(port, routes)
    server = start_server(config, tmp_path, [port], extra_args=["--workers", "2"])
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_until(lambda: len(children(server.process.pid)) == 2)
        workers = children(server.process.pid)
        # Every worker takes connections (the kernel spreads them by address hash).
        indexes = {index_of(pid) for pid in workers}
        assert indexes == {b"0", b"1"}
        for index in indexes:
            assert worker_serving(url, index), server.log()

        victim = min(workers)
        index_of_victim = index_of(victim)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: not threads_left(victim))
        # The survivor answers everything meanwhile: no request fails.
        survivor = (indexes - {index_of_victim}).pop()
        for i in range(30):
            try:
                assert get(url) == survivor
            except ConnectionResetError:
                kids = children(server.process.pid)
                raise AssertionError(f"request {i} reset; workers {kids}, dead {victim}") from None

        # The supervisor starts a replacement, which serves too.
        assert wait_until(lambda: len(children(server.process.pid) - {victim}) == 2)
        replacement = (children(server.process.pid) - workers).pop()
        assert index_of(replacement) == index_of_victim
        assert worker_serving(url, index_of_victim), server.log()
        assert "worker 0 exited" in server.log() or "worker 1 exited" in server.log()

        everyone = children(server.process.pid)
        assert server.stop() in (0, -signal.SIGTERM)  # twistd re-raises the signal
        assert all(not alive(pid) for pid in everyone)
    finally:
        server.stop()


def load(admin_port: int, config: dict[str, object]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/load",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_admin_reload_reaches_every_worker_and_stop_stops_all(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()

    def config(version: str) -> dict[str, object]:
        body = "{env.CADDYTW_WORKER_INDEX} " + version
        routes = [{"handle": [{"handler": "static_response", "body": body}]}]
        data = simple_config(port, routes)
        data["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
        return data

    server = start_server(config("v1"), tmp_path, [port, admin_port], extra_args=["-w", "2"])
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_until(lambda: len(children(server.process.pid)) == 2)
        assert load(admin_port, config("v2")) == 200
        # Worker 0 loaded it through its admin API, worker 1 through the supervisor.
        for answer in (b"0 v2", b"1 v2"):
            assert wait_until(lambda answer=answer: get(url) == answer), server.log()

        # A worker started after the reload (a crash replacement) gets the new config.
        victim = next(p for p in children(server.process.pid) if index_of(p) == b"1")
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(children(server.process.pid) - {victim}) == 2)
        assert worker_serving(url, b"1 v2"), server.log()

        everyone = children(server.process.pid)
        stop = urllib.request.Request(f"http://127.0.0.1:{admin_port}/stop", method="POST")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(stop, timeout=10).close()
        server.process.wait(timeout=30)
        assert wait_until(lambda: all(not alive(pid) for pid in everyone))
    finally:
        server.stop()


def test_a_bad_config_fails_at_once_with_its_json_path(tmp_path: Path) -> None:
    """The supervisor checks the config (in a child it forks) before starting a worker:
    a bad one exits 1 naming the field, instead of N workers crash-looping."""
    files = {"handler": "file_server", "rooot": str(tmp_path)}
    config = simple_config(free_port(), [{"handle": [files]}])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "caddy", "--config", str(path), "--workers", "2"],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert f"caddytw: invalid config {path}:" in done.stderr.decode()
    assert 'handle[0].rooot: unknown field "rooot"' in done.stderr.decode()
