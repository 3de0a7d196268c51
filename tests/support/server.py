"""Run the real ``twistd -n caddy`` in a subprocess on a config written for the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.ports import wait_for_port

REPO = Path(__file__).resolve().parents[2]
# ``twistd`` of this interpreter, without relying on PATH.
TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
]


class ServerProcess:
    """A running caddytw; ``log()`` returns what it printed so far."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, ports: list[int]) -> None:
        self.process = process
        self.log_path = log_path
        self.ports = ports

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Every server that runs saves its config as Caddy does (autosave.json, read by
    # ``run --resume``): keep test configs out of the user's own ~/.config/caddytw.
    env.setdefault(
        "XDG_CONFIG_HOME", os.path.join(tempfile.gettempdir(), f"caddytw-tests-{os.getuid()}")
    )
    if extra:
        env.update(extra)
    return env


def start_server(
    config: dict[str, Any] | str,
    workdir: Path,
    ports: list[int],
    *,
    config_name: str = "caddy.json",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ServerProcess:
    """Start ``twistd -n caddy -c CONFIG`` in ``workdir``; wait until ``ports`` accept."""
    config_path = workdir / config_name
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    config_path.write_text(text)
    log_path = workdir / f"server-{time.monotonic_ns()}.log"
    command = [*TWISTD, "-n", "--pidfile=", "caddy", "-c", str(config_path)]
    command += extra_args or []
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd or workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(env),
            pass_fds=pass_fds,
        )
    server = ServerProcess(process, log_path, ports)
    if wait:
        for port in ports:
            if not wait_for_port(port, timeout=15):
                server.stop()
                raise RuntimeError(f"server did not listen on {port}:\n{server.log()}")
    return server


@contextmanager
def running_server(
    config: dict[str, Any] | str, workdir: Path, ports: list[int], **kwargs: Any
) -> Iterator[ServerProcess]:
    server = start_server(config, workdir, ports, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def simple_config(port: int, routes: list[Any], **server: Any) -> dict[str, Any]:
    """A one-server config listening on 127.0.0.1:port (admin API off: tests that want it
    configure it on a free port)."""
    return {
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "servers": {"srv0": {"listen": [f"127.0.0.1:{port}"], "routes": routes, **server}}
            }
        },
    }
