"""Static file benchmark: caddytw's ``file_server`` beside Caddy's and nginx's.

    PYTHONPATH=. python bench/static.py [--rounds 3] [--duration 5] [--sizes 1k,1m,100m]

Generates 1 KiB, 1 MiB and 100 MiB files, starts the three servers on loopback ports
(each pinned to CPU 0 with ``taskset``), and drives each with ``wrk`` pinned to CPU 1.
Rounds are interleaved (every server and size once per round) so a noisy neighbour
hurts all servers alike; the table shows medians over rounds, the peak RSS seen while
serving, and req/s relative to Caddy. Installs ``wrk``, ``caddy`` and ``nginx`` with
apt-get when they are missing. Not run in CI; no test depends on its numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import common

REPO = Path(__file__).resolve().parents[1]
SERVER_CPU = "0"
CLIENT_CPU = "1"
SIZES = {"1k": 1024, "1m": 1 << 20, "100m": 100 << 20}
#: Connections per file size: many for small files (request rate), few for big ones
#: (throughput; 100 MiB per response already fills the pipe).
CONNECTIONS = {"1k": 50, "1m": 20, "100m": 4}
TOOLS = {"wrk": "wrk", "caddy": "caddy", "nginx": "nginx", "taskset": "util-linux"}
TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
]


def ensure_tools() -> None:
    """apt-get install whatever is missing (needs root, as on the CI image)."""
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def make_files(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        remaining = SIZES[name]
        with open(root / f"{name}.bin", "wb") as handle:
            while remaining:
                chunk = os.urandom(min(remaining, 1 << 20))
                handle.write(chunk)
                remaining -= len(chunk)


# -- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def pids(self) -> list[int]:
        """The server's process and its children (nginx's worker)."""
        found = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            found += [int(p) for p in children.read_text().split()]
        except OSError:
            pass
        return found

    def rss_kb(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            total += int(match.group(1)) if match else 0
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if self.name != "nginx" else signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def pinned(command: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *command]


def start(name: str, command: list[str], port: int, workdir: Path, env: dict[str, str]) -> Server:
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            pinned(command, SERVER_CPU), stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env
        )
    server = Server(name, port, process, log)
    try:
        wait_for_port(port)
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"{name} did not start:\n{log.read_text()}") from None
    return server


def http_config(port: int, root: Path) -> dict[str, object]:
    handler = {"handler": "file_server", "root": str(root)}
    server = {"listen": [f"127.0.0.1:{port}"], "routes": [{"handle": [handler]}]}
    return {"admin": {"disabled": True}, "apps": {"http": {"servers": {"bench": server}}}}


def start_caddytw(workdir: Path, root: Path) -> Server:
    port = free_port()
    config = workdir / "caddytw.json"
    config.write_text(json.dumps(http_config(port, root)))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [*TWISTD, "-n", "--pidfile=", "caddy", "-c", str(config)]
    return start("caddytw", command, port, workdir, env)


def start_caddy(workdir: Path, root: Path) -> Server:
    port = free_port()
    config = workdir / "caddy.json"
    config.write_text(json.dumps(http_config(port, root)))
    home = workdir / "caddy-home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return start("caddy", ["caddy", "run", "--config", str(config)], port, workdir, env)


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def start_nginx(workdir: Path, root: Path) -> Server:
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=root, user=user))
    command = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    return start("nginx", command, port, workdir, dict(os.environ))


STARTERS = {"caddytw": start_caddytw, "caddy": start_caddy, "nginx": start_nginx}


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Sample:
    requests_per_s: float
    mb_per_s: float
    p99_ms: float
    peak_rss_kb: int
    errors: str = ""


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, size: str, server: str, sample: Sample) -> None:
        self.samples.setdefault((size, server), []).append(sample)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str, file_size: int) -> tuple[float, float, float, str]:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    p99_ms = float(p99.group(1)) * _UNITS_MS[p99.group(2)] if p99 else float("nan")
    problems = [
        line.strip() for line in output.splitlines() if "Non-2xx" in line or "Socket errors" in line
    ]
    return rate, rate * file_size / 1e6, p99_ms, "; ".join(problems)


def rss_watch(server: Server) -> AbstractContextManager[list[float]]:
    """Sample the server's RSS (kB) every 50 ms while the body runs; yields [peak]."""
    return common.sampled_peak(lambda: float(server.rss_kb()), 0.05)


def run_wrk(server: Server, size: str, duration: int, connections: int) -> Sample:
    url = f"http://127.0.0.1:{server.port}/{size}.bin"
    command = pinned(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, duration)}s", "--latency", url],
        CLIENT_CPU,
    )
    with rss_watch(server) as peak:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate, mb, p99, problems = parse_wrk(output, SIZES[size])
    return Sample(rate, mb, p99, int(peak[0]), problems)


def check_content(server: Server, root: Path, size: str) -> None:
    """Every server must send exactly the file before its speed means anything."""
    url = f"http://127.0.0.1:{server.port}/{size}.bin"
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    if body != (root / f"{size}.bin").read_bytes():
        raise RuntimeError(f"{server.name} sent the wrong bytes for {size}.bin")


# -- reporting -----------------------------------------------------------------------------


def fmt_rss(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB"


def table(results: Results, sizes: list[str], servers: list[str]) -> str:
    lines = [
        "| file | server | req/s | MB/s | p99 latency | peak RSS | req/s vs Caddy |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:
        medians = {}
        for server in servers:
            samples = results.samples.get((size, server), [])
            if samples:
                medians[server] = statistics.median(s.requests_per_s for s in samples)
        for server in servers:
            samples = results.samples.get((size, server))
            if not samples:
                continue
            rate = medians[server]
            mb = statistics.median(s.mb_per_s for s in samples)
            p99 = statistics.median(s.p99_ms for s in samples)
            rss = max(s.peak_rss_kb for s in samples)
            ratio = f"{rate / medians['caddy']:.2f}x" if medians.get("caddy") else "n/a"
            lines.append(
                f"| {size} (-c{CONNECTIONS[size]}) | {server} | {rate:,.0f} | {mb:,.1f} | "
                f"{p99:.2f} ms | {fmt_rss(rss)} | {ratio} |"
            )
    return "\n".join(lines)


def environment() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (done.stdout + done.stderr).strip().splitlines()[0]

    return (
        f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}; caddy {version(['caddy', 'version'])}; "
        f"{version(['nginx', '-v'])}; {version(['wrk', '--version'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--sizes", default="1k,1m,100m")
    parser.add_argument("--servers", default="caddytw,caddy,nginx")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    servers = args.servers.split(",")
    ensure_tools()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="caddytw-bench-") as temp:
        workdir = Path(temp)
        workdir.chmod(0o755)  # nginx workers may run as another user
        root = workdir / "files"
        make_files(root, sizes)
        started: dict[str, Server] = {}
        try:
            for name in servers:
                started[name] = STARTERS[name](workdir, root)
            for size in sizes:
                for name in servers:
                    check_content(started[name], root, size)
                    run_wrk(started[name], size, 1, CONNECTIONS[size])  # warm-up
            for round_index in range(args.rounds):
                for size in sizes:
                    for name in servers:
                        sample = run_wrk(started[name], size, args.duration, CONNECTIONS[size])
                        results.add(size, name, sample)
                        note = f" ({sample.errors})" if sample.errors else ""
                        print(
                            f"round {round_index + 1} {size:>4} {name:<8} "
                            f"{sample.requests_per_s:>10,.0f} req/s {sample.p99_ms:8.2f} ms p99"
                            f"{note}",
                            file=sys.stderr,
                        )
        finally:
            for server in started.values():
                server.stop()
    print(f"\n{environment()}")
    print(
        f"{args.rounds} rounds x {args.duration:g} s per server and file, interleaved; "
        f"servers on CPU {SERVER_CPU}, wrk -t1 on CPU {CLIENT_CPU}; medians (peak RSS: max).\n"
    )
    print(table(results, sizes, servers))


if __name__ == "__main__":
    main()
