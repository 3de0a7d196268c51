"""HTTP/1.1 benchmark: 1 KiB static answer and the same through a reverse proxy, caddytw
side by side with Caddy and nginx (not run in CI).

    PYTHONPATH=. python bench/http1.py [--rounds 3] [--seconds 5] [--connections 50]

Each server is pinned with ``taskset`` to core 0 (Caddy with ``GOMAXPROCS=1``, nginx
with one worker); the load generator, ``wrk -t1``, to core 1. caddytw also runs with
``--workers 2`` on cores 0-1 when the option exists (sharing core 1 with wrk, so that
row is a floor). The proxy case puts an nginx upstream serving the same 1 KiB on core 1.
Rounds are interleaved (every server once per round) so drift hits all alike. Prints a
Markdown table: median requests/s, spread ((max - min) / median), the ratio to Caddy's
median, and peak RSS (VmHWM, summed over a server's processes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.server import TWISTD, server_env  # noqa: E402

BODY = "x" * 1024
SERVER_CPUS = "0"
CLIENT_CPUS = "1"


def handler_available(name: str) -> bool:
    from caddytw.handlers.registry import handler_factories

    return name in handler_factories()


def workers_available() -> bool:
    result = subprocess.run(
        [*TWISTD, "caddy", "--help"], capture_output=True, text=True, env=server_env(), timeout=60
    )
    return "--workers" in result.stdout


def caddy_json(port: int, root: Path, upstream: int | None, file_server: bool) -> dict[str, Any]:
    if upstream is not None:
        handle = {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{upstream}"}]}
    elif file_server:
        handle = {"handler": "file_server", "root": str(root)}
    else:
        handle = {"handler": "static_response", "body": BODY}
    return {
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "servers": {
                    "bench": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": [{"handle": [handle]}],
                        "automatic_https": {"disable": True},
                    }
                }
            }
        },
    }


def nginx_conf(work: Path, port: int, root: Path, upstream: int | None) -> Path:
    location = (
        f"proxy_pass http://127.0.0.1:{upstream}; proxy_http_version 1.1; "
        'proxy_set_header Connection "";'
        if upstream is not None
        else f"root {root};"
    )
    upstream_block = ""
    path = work / f"nginx-{port}.conf"
    path.write_text(
        f"""daemon off; worker_processes 1; pid {work}/nginx-{port}.pid;
error_log {work}/nginx-{port}.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; {upstream_block}
  client_body_temp_path {work}/body-{port}; proxy_temp_path {work}/proxy-{port};
  fastcgi_temp_path {work}/fcgi-{port}; uwsgi_temp_path {work}/uwsgi-{port};
  scgi_temp_path {work}/scgi-{port};
  server {{ listen 127.0.0.1:{port}; location / {{ {location} }} }} }}
"""
    )
    return path


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cpus: str = SERVER_CPUS
    process: subprocess.Popen[bytes] | None = None
    rates: list[float] = field(default_factory=list)

    def start(self, work: Path) -> None:
        log = open(work / f"{self.name.replace(' ', '_')}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["taskset", "-c", self.cpus, *self.command],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env or None,
        )
        if not wait_for_port(self.port, 30):
            raise RuntimeError(f"{self.name} did not start (see {log.name})")

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        return sum(_vmhwm(pid) for pid in _tree(self.process.pid)) / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            for child in text.split():
                found.extend(_tree(int(child)))
    except OSError:
        pass
    return found


def _vmhwm(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def wrk(port: int, seconds: int, connections: int) -> float:
    output = subprocess.run(
        [
            "taskset",
            "-c",
            CLIENT_CPUS,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            f"http://127.0.0.1:{port}/bench.txt",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None or "Non-2xx" in output or ("Socket errors" in output and "timeout" in output):
        raise RuntimeError(f"wrk failed:\n{output}")
    return float(rate.group(1))


def servers_for(case: str, work: Path, root: Path, upstream: int | None) -> list[Server]:
    file_server = handler_available("file_server")
    servers: list[Server] = []
    if upstream is None or handler_available("reverse_proxy"):
        port = free_port()
        path = work / f"caddytw-{case}.json"
        path.write_text(json.dumps(caddy_json(port, root, upstream, file_server)))
        twistd = [*TWISTD, "-n", "--pidfile=", "caddy", "-c", str(path)]
        servers.append(Server("caddytw", twistd, port, server_env()))
        if workers_available():
            port2 = free_port()
            path2 = work / f"caddytw-{case}-w2.json"
            path2.write_text(json.dumps(caddy_json(port2, root, upstream, file_server)))
            command = [*TWISTD, "-n", "--pidfile=", "caddy", "-c", str(path2), "--workers", "2"]
            servers.append(Server("caddytw --workers 2", command, port2, server_env(), "0,1"))
    if shutil.which("caddy"):
        port = free_port()
        path = work / f"caddy-{case}.json"
        path.write_text(json.dumps(caddy_json(port, root, upstream, True)))
        env = {
            "HOME": str(work),
            "XDG_DATA_HOME": str(work),
            "PATH": "/usr/bin:/bin",
            "GOMAXPROCS": "1",
        }
        servers.append(Server("Caddy", ["caddy", "run", "--config", str(path)], port, env))
    if shutil.which("nginx"):
        port = free_port()
        conf = nginx_conf(work, port, root, upstream)
        servers.append(Server("nginx", ["nginx", "-c", str(conf), "-p", str(work)], port))
    return servers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="http-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    root = work / "site"
    root.mkdir()
    (root / "bench.txt").write_text(BODY)
    upstream_port = free_port()
    upstream = Server(
        "upstream nginx",
        ["nginx", "-c", str(nginx_conf(work, upstream_port, root, None)), "-p", str(work)],
        upstream_port,
        cpus=CLIENT_CPUS,
    )
    rows: list[str] = []
    started: list[Server] = []
    try:
        upstream.start(work)
        for case, target in (("static 1 KiB", None), ("proxy 1 KiB", upstream_port)):
            servers = servers_for(case.split()[0], work, root, target)
            for server in servers:
                server.start(work)
                started.append(server)
            for _ in range(options.rounds):
                for server in servers:
                    try:
                        rate = wrk(server.port, options.seconds, options.connections)
                    except RuntimeError as error:
                        raise RuntimeError(f"{case}, {server.name}: {error}") from None
                    server.rates.append(rate)
            reference = next((s for s in servers if s.name == "Caddy"), None)
            base = statistics.median(reference.rates) if reference else None
            for server in servers:
                median = statistics.median(server.rates)
                spread = (max(server.rates) - min(server.rates)) / median * 100
                ratio = f"{median / base:.2f}" if base else "n/a"
                rows.append(
                    f"| {case} | {server.name} | {median:,.0f} | ±{spread / 2:.0f}% | {ratio} "
                    f"| {server.peak_rss_mib():.0f} |"
                )
            for server in servers:
                server.stop()
    finally:
        for server in [*started, upstream]:
            server.stop()
    print(
        f"wrk -t1 -c{options.connections} -d{options.seconds}s on core {CLIENT_CPUS}, servers on "
        f"core {SERVER_CPUS}; {options.rounds} interleaved rounds\n"
    )
    print("| case | server | req/s (median) | spread | ratio to Caddy | peak RSS MiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
