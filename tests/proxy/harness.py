"""Shared helpers for the proxy's real-process tests: upstream processes, a proxy config,
plain HTTP requests, and /proc readings of the proxy process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port, wait_for_port
from tests.support.server import running_server, simple_config

UPSTREAM_SCRIPT = Path(__file__).with_name("upstream.py")


@dataclass
class UpstreamProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def dial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)


def start_upstream(
    name: str, mode: str = "http", port: int | None = None, *args: str
) -> UpstreamProcess:
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, str(UPSTREAM_SCRIPT), str(port), name, mode, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_for_port(port, timeout=10):
        process.kill()
        raise RuntimeError(f"upstream {name} did not start")
    return UpstreamProcess(name, port, process)


@contextmanager
def upstreams(*names: str, mode: str = "http") -> Iterator[list[UpstreamProcess]]:
    started = [start_upstream(name, mode) for name in names]
    try:
        yield started
    finally:
        for upstream in started:
            upstream.kill()


def proxy_route(upstream_list: list[UpstreamProcess] | list[str], **handler: Any) -> dict[str, Any]:
    dials = [u if isinstance(u, str) else u.dial for u in upstream_list]
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial} for dial in dials],
        **handler,
    }


@contextmanager
def proxy(tmp_path: Path, handler: dict[str, Any], **server: Any) -> Iterator[Any]:
    port = free_port()
    config = simple_config(port, [{"handle": [handler]}], **server)
    with running_server(config, tmp_path, [port]) as process:
        yield process
        log = process.log()
    # Whatever happened, the proxy never logged an unhandled error or a traceback.
    assert "Unhandled" not in log and "Traceback" not in log, log


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def upstream(self) -> str:
        return str(self.json()["name"])


class Client:
    """A keep-alive HTTP/1.1 client to the proxy (optionally from a given source IP)."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 15) -> None:
        self.port = port
        self.source = source
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str = "GET", path: str = "/", body: bytes | None = None, **headers: str
    ) -> Reply:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout, source_address=(self.source, 0)
            )
        fields = {k.replace("_", "-"): v for k, v in headers.items()}
        try:
            self.connection.request(method, path, body=body, headers=fields)
            response = self.connection.getresponse()
            data = response.read()
        except Exception:
            self.close()
            raise
        if response.will_close:
            self.close()
        return Reply(response.status, response.headers, data)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def read_head(sock: Any) -> tuple[bytes, bytes]:
    """Read a response head off a raw socket: the head and what followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def get(port: int, path: str = "/", **headers: str) -> Reply:
    client = Client(port)
    try:
        return client.request("GET", path, **headers)
    finally:
        client.close()


def port_of(process: Any) -> int:
    return int(process.ports[0])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, quiet: float = 0.5, timeout: float = 10) -> int:
    """The process's descriptor count once it stopped changing (start-up work is done)."""
    import time

    deadline = time.monotonic() + timeout
    count, since = open_fds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = open_fds(pid)
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return count


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
