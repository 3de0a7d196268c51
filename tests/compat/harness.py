"""Run Debian's Caddy and caddytw on the same config and compare their answers."""

from __future__ import annotations

import copy
import http.client
import json
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port, wait_for_port
from tests.support.server import start_server

CADDY = shutil.which("caddy")
COMPARED_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "allow",
    "vary",
    "www-authenticate",
    "content-encoding",
    "content-range",
    "accept-ranges",
    "server",
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def comparable(self, headers: tuple[str, ...] = COMPARED_HEADERS) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": {k: v for k, v in self.headers.items() if k in headers},
            "body": self.body,
        }


def fetch(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    sent = {"Host": f"localhost:{port}", **(headers or {})}
    for name, value in sent.items():
        connection.putheader(name, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    merged: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return Answer(response.status, merged, data)


def with_port(config: dict[str, Any], port: int) -> dict[str, Any]:
    """The config with every server listening on ``port`` (one server configs)."""
    result = copy.deepcopy(config)
    for server in result["apps"]["http"]["servers"].values():
        server["listen"] = [f"127.0.0.1:{port}"]
    result.setdefault("admin", {"disabled": True})
    return result


@contextmanager
def both_servers(config: dict[str, Any], workdir: Path):
    """Yield (caddy_port, caddytw_port) serving the same config."""
    caddy_port, ours_port = free_port(), free_port()
    caddy_dir = workdir / "caddy"
    ours_dir = workdir / "ours"
    caddy_dir.mkdir()
    ours_dir.mkdir()
    caddy_config = caddy_dir / "caddy.json"
    caddy_config.write_text(json.dumps(with_port(config, caddy_port)))
    log = open(caddy_dir / "caddy.log", "wb")  # noqa: SIM115 - closed in finally
    env = {
        "HOME": str(caddy_dir),
        "XDG_DATA_HOME": str(caddy_dir),
        "XDG_CONFIG_HOME": str(caddy_dir),
        "PATH": "/usr/bin:/bin",
    }
    caddy = subprocess.Popen(
        [CADDY, "run", "--config", str(caddy_config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    ours = None
    try:
        ours = start_server(with_port(config, ours_port), ours_dir, [ours_port])
        if not wait_for_port(caddy_port):
            raise RuntimeError((caddy_dir / "caddy.log").read_text())
        yield caddy_port, ours_port
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)
        log.close()
        if ours is not None:
            ours.stop()
