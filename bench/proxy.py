"""Reverse-proxy benchmark: caddytw's ``reverse_proxy`` against Caddy's and nginx's
``proxy_pass``, all in front of the same nginx backend. Not run in CI.

    PYTHONPATH=. python bench/proxy.py [--duration 5] [--connections 16]

The backend serves a 1 KiB and a 1 MiB file. Each proxy runs pinned to CPU 0; the
backend and ``wrk`` run pinned to CPU 1, so the proxies compete for one core only with
themselves. Prints a Markdown table: requests/s, p99 latency, and requests/s relative to
Caddy for each size.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def process(command: list[str], port: int, cpu: str, **kwargs) -> Iterator[None]:
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,
    )
    try:
        if not wait_for_port(port, timeout=20):
            raise RuntimeError(f"{command[0]} did not listen on {port}")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backend(work: Path, port: int) -> Iterator[None]:
    root = work / "www"
    root.mkdir(exist_ok=True)
    for path, size in SIZES.values():
        (root / path.strip("/")).write_bytes(b"x" * size)
    conf = nginx_conf(
        work,
        f"server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000; root {root}; }}",
    )
    return process(["nginx", "-c", str(conf), "-p", str(work)], port, CLIENT_CPU)


def nginx_proxy(work: Path, port: int, upstream: int) -> Iterator[None]:
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


def caddy_proxy(work: Path, port: int, upstream: int) -> Iterator[None]:
    conf = work / "caddy.json"
    conf.write_text(json.dumps(caddy_config(port, upstream)))
    env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work), XDG_CONFIG_HOME=str(work))
    return process(["caddy", "run", "--config", str(conf)], port, PROXY_CPU, env=env)


def caddytw_proxy(work: Path, port: int, upstream: int) -> Iterator[None]:
    conf = work / "caddytw.json"
    config = caddy_config(port, upstream)
    del config["admin"]
    conf.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "caddy", "-c", str(conf)]
    return process(command, port, PROXY_CPU, env=env, cwd=work)


def wrk(port: int, path: str, duration: int, connections: int) -> tuple[float, float]:
    """(requests/s, p99 in ms) from ``wrk --latency`` pinned to the client CPU."""
    url = f"http://127.0.0.1:{port}{path}"
    subprocess.run(
        ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c4", "-d1s", url],
        check=True,
        capture_output=True,
    )  # warm-up: connections, pools, caches
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
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    return rate, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    proxies = {"Caddy 2.6.2": caddy_proxy, "caddytw": caddytw_proxy, "nginx": nginx_proxy}
    results: dict[tuple[str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run unprivileged and must read the files
        upstream = free_port()
        with backend(work, upstream):
            for name, start in proxies.items():
                port = free_port()
                with start(work, port, upstream):
                    for size, (path, _) in SIZES.items():
                        results[name, size] = wrk(port, path, args.duration, args.connections)
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s; proxies on CPU {PROXY_CPU}, "
        f"nginx backend and wrk on CPU {CLIENT_CPU}\n"
    )
    print("| proxy | response | req/s | p99 (ms) | req/s vs Caddy |")
    print("| --- | --- | ---: | ---: | ---: |")
    for size in SIZES:
        caddy_rate = results["Caddy 2.6.2", size][0]
        for name in proxies:
            rate, p99 = results[name, size]
            print(f"| {name} | {size} | {rate:,.0f} | {p99:.2f} | {rate / caddy_rate:.2f} |")


if __name__ == "__main__":
    main()
