"""Reverse-proxy benchmark: caddytw's ``reverse_proxy`` against Caddy's and nginx's
``proxy_pass``, all in front of the same nginx backend. Not run in CI.

    PYTHONPATH=. python bench/proxy.py [--duration 5] [--connections 16]

The backend serves a 1 KiB and a 1 MiB file. Each proxy runs pinned to CPU 0; the
backend and ``wrk`` run pinned to CPU 1, so the proxies compete for one core only with
themselves. Prints a Markdown table: requests/s, p99 latency, requests/s relative to Caddy, the
proxy's CPU time per request (utime + stime of the proxy process and its children from
``/proc``: much steadier than requests/s on a shared machine) and how many connections
the backend accepted during the run (``stub_status``; a pooling proxy opens about as
many as there are client connections, not one per request).

    PYTHONPATH=. python bench/proxy.py --only caddytw --profile /tmp/proxy.prof

runs only caddytw, under cProfile (twistd ``--profile``), and writes the stats there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port, wait_for_port  # noqa: E402

PROXY_CPU = "0"
CLIENT_CPU = "1"
SIZES = {"1 KiB": ("/1k", 1024), "1 MiB": ("/1m", 1 << 20)}
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def nginx_conf(work: Path, body: str) -> Path:
    conf = work / f"nginx-{time.monotonic_ns()}.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {conf}.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    {body}
}}
"""
    )
    return conf


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and all its live descendants (nginx: master + workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


@contextmanager
def process(command: list[str], port: int, cpu: str, **kwargs) -> Iterator[int]:
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,
    )
    try:
        if not wait_for_port(port, timeout=20):
            raise RuntimeError(f"{command[0]} did not listen on {port}")
        yield proc.pid  # taskset execs the command: same process
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backend(work: Path, port: int) -> Iterator[int]:
    root = work / "www"
    root.mkdir(exist_ok=True)
    for path, size in SIZES.values():
        (root / path.strip("/")).write_bytes(b"x" * size)
    conf = nginx_conf(
        work,
        f"server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000; root {root};"
        " location = /nginx_status { stub_status; } }",
    )
    return process(["nginx", "-c", str(conf), "-p", str(work)], port, CLIENT_CPU)


def backend_accepts(port: int) -> int:
    """Connections the backend has accepted so far (its ``stub_status`` counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx_status", timeout=5) as r:
        text = r.read().decode()
    return int(text.splitlines()[2].split()[0])


def nginx_proxy(work: Path, port: int, upstream: int, profile: str | None) -> Iterator[int]:
    conf = nginx_conf(
        work,
        f"""upstream backend {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
        }}
    }}""",
    )
    return process(["nginx", "-c", str(conf), "-p", str(work)], port, PROXY_CPU)


def caddy_config(port: int, upstream: int) -> dict:
    handler = {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{upstream}"}]}
    return {
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "servers": {
                    "bench": {"listen": [f"127.0.0.1:{port}"], "routes": [{"handle": [handler]}]}
                }
            }
        },
    }


def caddy_proxy(work: Path, port: int, upstream: int, profile: str | None) -> Iterator[int]:
    conf = work / "caddy.json"
    conf.write_text(json.dumps(caddy_config(port, upstream)))
    env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work), XDG_CONFIG_HOME=str(work))
    return process(["caddy", "run", "--config", str(conf)], port, PROXY_CPU, env=env)


def caddytw_proxy(work: Path, port: int, upstream: int, profile: str | None) -> Iterator[int]:
    conf = work / "caddytw.json"
    config = caddy_config(port, upstream)
    del config["admin"]
    conf.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-c", TWISTD, "-n", "--pidfile="]
    if profile:
        command += [f"--profile={profile}", "--profiler=cprofile", "--savestats"]
    command += ["caddy", "-c", str(conf)]
    return process(command, port, PROXY_CPU, env=env, cwd=work)


@dataclass
class Result:
    rate: float
    p99: float
    cpu_us: float  # proxy CPU time per request, microseconds
    connects: int  # connections the backend accepted during the measured run


def wrk(port: int, path: str, duration: int, connections: int) -> tuple[float, float, int]:
    """(requests/s, p99 in ms, requests) from ``wrk --latency`` pinned to the client CPU."""
    url = f"http://127.0.0.1:{port}{path}"
    out = subprocess.run(
        [
            "taskset",
            "-c",
            CLIENT_CPU,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    return rate, p99, requests


def measure(pid: int, backend_port: int, port: int, path: str, args: Any) -> Result:
    """A warm-up run (connections, pools, caches), then the measured one."""
    wrk(port, path, 1, 4)
    accepts, cpu = backend_accepts(backend_port), cpu_seconds(pid)
    rate, p99, requests = wrk(port, path, args.duration, args.connections)
    cpu = cpu_seconds(pid) - cpu
    connects = backend_accepts(backend_port) - accepts - 1  # minus our own status request
    return Result(rate, p99, cpu / max(1, requests) * 1e6, connects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", choices=["caddy", "caddytw", "nginx"], action="append")
    parser.add_argument("--profile", help="run caddytw under cProfile, stats to this file")
    args = parser.parse_args()
    proxies = {"Caddy 2.6.2": caddy_proxy, "caddytw": caddytw_proxy, "nginx": nginx_proxy}
    if args.only:
        proxies = {k: v for k, v in proxies.items() if k.split()[0].lower() in args.only}
    results: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run unprivileged and must read the files
        upstream = free_port()
        with backend(work, upstream):
            for name, start in proxies.items():
                port = free_port()
                with start(work, port, upstream, args.profile) as pid:
                    for size, (path, _) in SIZES.items():
                        results[name, size] = measure(pid, upstream, port, path, args)
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s; proxies on CPU {PROXY_CPU}, "
        f"nginx backend and wrk on CPU {CLIENT_CPU}\n"
    )
    print(
        "| proxy | response | req/s | p99 (ms) | req/s vs Caddy | CPU µs/req | upstream connects |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for size in SIZES:
        caddy = results.get(("Caddy 2.6.2", size))
        for name in proxies:
            r = results[name, size]
            ratio = f"{r.rate / caddy.rate:.2f}" if caddy else "-"
            print(
                f"| {name} | {size} | {r.rate:,.0f} | {r.p99:.2f} | {ratio} "
                f"| {r.cpu_us:.0f} | {r.connects} |"
            )


if __name__ == "__main__":
    main()
