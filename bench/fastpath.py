"""Plain HTTP/1.1, fixed 1 KiB answer: caddytw's channel and workers against Caddy
and nginx (``wrk -t1 -c50``, keep-alive). Not run in CI.

    PYTHONPATH=. python bench/http1.py [--rounds 5] [--duration 5]

Cases, each started fresh and measured once per round (rounds interleave the cases):

- ``caddytw`` (its lean HTTP/1.1 channel), one process on one core;
- Caddy 2 (``static_response``, GOMAXPROCS free but pinned to the same core), the
  reference, and nginx (one worker, ``return 200``) as the ceiling;
- both again with the access log on (JSON lines to the server's stderr, a file);
- on two cores: caddytw ``--workers 2`` against Caddy on the same two cores (the load
  generator shares them: on a 2-core machine this row shows scaling, not a ceiling).

Besides requests/s the table gives the server's CPU time per request (user+system,
from /proc, all its processes): it is much less disturbed by other load on the
machine than requests/s. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import common
from common import Samples, markdown_table

from tests.support.ports import free_port, wait_for_port
from tests.support.server import TWISTD, server_env

BODY = "x" * 1024


def route_config(port: int, access_log: bool = False) -> dict[str, object]:
    server: dict[str, object] = {
        "listen": [f"127.0.0.1:{port}"],
        "routes": [{"handle": [{"handler": "static_response", "body": BODY}]}],
    }
    if access_log:
        server["logs"] = {}
    return {
        "admin": {"disabled": True},
        "apps": {"http": {"servers": {"bench": server}}},
    }


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
    uwsgi_temp_path {dir}; scgi_temp_path {dir};
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "{body}"; }}
    }}
}}
"""


@dataclass
class Case:
    name: str
    cpus: str
    reference: str
    rate: Samples = field(default_factory=Samples)
    cpu_us: Samples = field(default_factory=Samples)
    rss: float = 0.0
    note: str = ""


@contextmanager
def launched(case: str, workdir: Path, cpus: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start the server of ``case`` on a fresh port; yields (process, port)."""
    port = free_port()
    env = server_env()
    config_path = workdir / f"{case}.json"
    config_path.write_text(json.dumps(route_config(port, access_log=case.endswith("-log"))))
    if case.startswith("caddytw"):
        command = [*TWISTD, "-n", "--pidfile=", "caddy", "-c", str(config_path)]
        if "workers" in case:
            command += ["--workers", "2"]
    elif case.startswith("caddy"):
        command = ["caddy", "run", "--config", str(config_path)]
        env.update(HOME=str(workdir), XDG_DATA_HOME=str(workdir), XDG_CONFIG_HOME=str(workdir))
    else:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, port=port, body=BODY))
        command = ["nginx", "-c", str(conf), "-p", str(workdir)]
    log = open(workdir / f"{case}.log", "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        common.pinned(command, cpus), cwd=workdir, env=env, stdout=log, stderr=log
    )
    try:
        if not wait_for_port(port, timeout=30):
            raise RuntimeError(f"{case} did not start: see {workdir}/{case}.log")
        if "workers" in case:
            time.sleep(3)  # let the second worker bind as well
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def measure(case: Case, workdir: Path, seconds: float) -> None:
    with launched(case.name, workdir, case.cpus) as (process, port):
        url = f"http://127.0.0.1:{port}/"
        common.wrk(url, 1.0, cpus=common.CLIENT_CPUS)  # warm-up
        before = common.cpu_seconds(process.pid)
        result = common.wrk(url, seconds, cpus=case_client_cpus(case))
        used = common.cpu_seconds(process.pid) - before
        if result.errors or result.non_2xx:
            case.note = f"{result.errors} socket errors, {result.non_2xx} non-2xx"
        case.rate.add(result.rate)
        if result.requests:
            case.cpu_us.add(used / result.requests * 1e6)
        case.rss = max(case.rss, common.peak_rss_mib(process.pid))


def case_client_cpus(case: Case) -> str:
    return case.cpus if "," in case.cpus or "-" in case.cpus else common.CLIENT_CPUS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=common.rounds())
    parser.add_argument("--duration", type=float, default=common.duration())
    parser.add_argument("--no-workers", action="store_true", help="skip the 2-core rows")
    args = parser.parse_args()

    one, two = common.SERVER_CPUS, "0-1"
    cases = [
        Case("caddytw", one, "caddy"),
        Case("caddy", one, "caddy"),
        Case("caddytw-log", one, "caddy-log"),
        Case("caddy-log", one, "caddy-log"),
    ]
    if common.have("nginx"):
        cases.append(Case("nginx", one, "caddy"))
    if not args.no_workers and (os.cpu_count() or 1) >= 2:
        cases += [Case("caddytw-workers", two, "caddy-2cpu"), Case("caddy-2cpu", two, "caddy-2cpu")]
    if not common.have("caddy"):
        cases = [c for c in cases if not c.name.startswith("caddy") or c.name.startswith("caddytw")]
    by_name = {c.name: c for c in cases}

    with tempfile.TemporaryDirectory(prefix="bench-http1-") as tmp:
        workdir = Path(tmp)
        common.interleave(
            [c.name for c in cases],
            args.rounds,
            lambda name, _: measure(by_name[name], workdir, args.duration),
        )

    labels = {
        "caddytw": "caddytw, lean channel",
        "caddy": "Caddy 2",
        "nginx": "nginx (1 worker)",
        "caddytw-workers": "caddytw --workers 2",
        "caddy-2cpu": "Caddy 2",
        "caddytw-log": "caddytw, access log on",
        "caddy-log": "Caddy 2, access log on",
    }
    rows = []
    for case in cases:
        reference = by_name.get(case.reference)
        rows.append(
            [
                labels[case.name],
                case.cpus,
                f"{case.rate.median:,.0f}",
                common.percent(case.rate.spread),
                f"{case.rate.ratio(reference.rate):.2f}x" if reference else "n/a",
                f"{case.cpu_us.median:.1f}",
                f"{case.rss:.0f}",
                case.note,
            ]
        )
    print(f"1 KiB `static_response`, wrk -t1 -c50, {args.rounds} rounds of {args.duration:g} s\n")
    print(
        markdown_table(
            [
                "server",
                "cpus",
                "req/s (median)",
                "spread",
                "vs Caddy",
                "server CPU µs/req",
                "peak RSS MiB",
                "notes",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
