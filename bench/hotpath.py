"""Where the time goes (issue 18): server CPU µs per request on the hot paths, caddytw
beside Caddy and nginx, and a cProfile summary of caddytw for the 1 KiB cases.

    PYTHONPATH=. python bench/hotpath.py [--rounds 3] [--duration 5] [--no-profile]
                                         [--no-workers] [--profile-dir bench/results]
                                         [--compare /path/to/other/checkout] [--profile-only]

Cases (every server answers the same files from the same root, same certificate):

- ``file_server`` 1 KiB (``wrk -c50``) and 1 MiB (``wrk -c10``);
- ``reverse_proxy`` 1 KiB to an nginx backend (on the client CPU);
- TLS + HTTP/2, 1 KiB file (``h2load -c10 -m10``);
- a 100 MiB download (``curl`` three times): MiB/s and the server's peak RSS
  (VmRSS sampled every 20 ms during the downloads: VmHWM would remember earlier cases);
- workers: ``file_server`` and ``reverse_proxy`` 1 KiB with caddytw ``--workers 1/2``
  against Caddy ``GOMAXPROCS=1/2``, servers on CPUs 0-1 (the load generator shares
  them, so these rows show scaling, not a ceiling).

One process per server serves all the single-core cases (three listeners: plain file
server, proxy, TLS), pinned to CPU 0; the load generator runs on CPU 1. Rounds
interleave the servers so background load hits them alike. The number to read is the
server CPU µs per request (utime + stime from ``/proc/<pid>/stat`` over the measured
run, all processes of the server): on a shared machine it moves much less than req/s.

The profile: caddytw is started again under cProfile (twistd ``--profile``) for each
1 KiB case, driven the same way, stopped, and the top 25 functions by ``tottime`` go to
``<profile-dir>/profile-<case>.txt`` (and their first lines into the Markdown), then
the top 40 by cumulative time.

``--compare PATH`` runs another caddytw checkout (e.g. main's) as one more server in the
same rounds: the fair before/after on a machine whose load changes from minute to minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import Samples, markdown_table

from tests.support.ports import free_port, wait_for_port
from tests.support.server import TWISTD, server_env
from tests.tls.pki import TestCA

SERVERS = ("caddytw", "caddy", "nginx")
#: ``--compare PATH``: another caddytw checkout measured as one more server (A/B in the
#: same interleaved rounds, which on a shared machine is the only fair comparison).
OTHER_TREE: Path | None = None
OTHER = "caddytw-other"
SIZES = {"1k.bin": 1024, "1m.bin": 1 << 20, "100m.bin": 100 << 20}


@dataclass
class Ports:
    files: int
    proxy: int
    tls: int


@dataclass
class Env:
    work: Path
    root: Path
    cert: Path
    key: Path
    backend: int


# -- configurations --------------------------------------------------------------------


def caddy_json(env: Env, ports: Ports) -> dict[str, Any]:
    """One Caddy JSON config for caddytw and Caddy alike: three servers."""
    files = [{"handle": [{"handler": "file_server", "root": str(env.root)}]}]
    proxy = [
        {
            "handle": [
                {"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{env.backend}"}]}
            ]
        }
    ]
    return {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(env.work / f"storage-{ports.files}")},
        "apps": {
            "http": {
                "http_port": free_port(),
                "https_port": ports.tls,
                "servers": {
                    "files": {"listen": [f"127.0.0.1:{ports.files}"], "routes": files},
                    "proxy": {"listen": [f"127.0.0.1:{ports.proxy}"], "routes": proxy},
                    "tls": {
                        "listen": [f"127.0.0.1:{ports.tls}"],
                        "routes": files,
                        "tls_connection_policies": [{}],
                        "automatic_https": {"disable": True},
                        "protocols": ["h1", "h2"],
                    },
                },
            },
            "tls": {
                "certificates": {
                    "load_files": [{"certificate": str(env.cert), "key": str(env.key)}]
                }
            },
        },
    }


NGINX_HEAD = """daemon off;
worker_processes 1;
pid {conf}.pid;
error_log {work}/nginx-error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    {temp_paths}
    {body}
}}
"""


def nginx_conf(env: Env, name: str, body: str) -> Path:
    conf = env.work / f"nginx-{name}.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_HEAD.format(
            conf=conf,
            work=env.work,
            user=user,
            body=body,
            temp_paths=common.nginx_temp_paths(env.work),
        )
    )
    return conf


def nginx_servers(env: Env, ports: Ports) -> str:
    return f"""
    upstream backend {{ server 127.0.0.1:{env.backend}; keepalive 32; }}
    server {{ listen 127.0.0.1:{ports.files}; root {env.root}; location / {{ }} }}
    server {{
        listen 127.0.0.1:{ports.proxy};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{ports.tls} ssl http2;
        ssl_certificate {env.cert};
        ssl_certificate_key {env.key};
        root {env.root};
        location / {{ }}
    }}"""


# -- processes -------------------------------------------------------------------------


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    ports: Ports

    @property
    def pid(self) -> int:
        return self.process.pid  # taskset execs the command: same process


@contextmanager
def launched(
    env: Env,
    server: str,
    cpus: str,
    *,
    workers: int = 1,
    profile: Path | None = None,
) -> Iterator[Running]:
    """Start ``server`` with the three listeners on fresh ports, pinned to ``cpus``."""
    ports = Ports(free_port(), free_port(), free_port())
    tag = f"{server}-{ports.files}"
    process_env = server_env()
    if server == OTHER and OTHER_TREE is not None:
        process_env["PYTHONPATH"] = str(OTHER_TREE)
    if server in ("caddytw", OTHER):
        conf = env.work / f"{tag}.json"
        conf.write_text(json.dumps(caddy_json(env, ports)))
        command = [*TWISTD, "-n", "--pidfile="]
        if profile is not None:
            command += [f"--profile={profile}", "--profiler=cprofile", "--savestats"]
        command += ["caddy", "-c", str(conf)]
        if workers > 1:
            command += ["--workers", str(workers)]
    elif server == "caddy":
        conf = env.work / f"{tag}.json"
        conf.write_text(json.dumps(caddy_json(env, ports)))
        command = ["caddy", "run", "--config", str(conf)]
        home = str(env.work / "caddy-home")
        process_env.update(
            HOME=home, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home, GOMAXPROCS=str(workers)
        )
    else:
        conf = nginx_conf(env, tag, nginx_servers(env, ports))
        command = ["nginx", "-c", str(conf), "-p", str(env.work)]
    log = open(env.work / f"{tag}.log", "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        common.pinned(command, cpus), cwd=env.work, env=process_env, stdout=log, stderr=log
    )
    try:
        for port in (ports.files, ports.proxy, ports.tls):
            if not wait_for_port(port, timeout=30):
                raise RuntimeError(f"{server} did not start: see {env.work}/{tag}.log")
        if workers > 1 and server in ("caddytw", OTHER):
            time.sleep(3)  # let the other worker bind as well
        yield Running(server, process, ports)
    finally:
        process.send_signal(signal.SIGQUIT if server == "nginx" else signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def backend(env: Env) -> Iterator[None]:
    """The nginx upstream for the proxy cases, on the client CPU."""
    conf = nginx_conf(
        env,
        "backend",
        f"server {{ listen 127.0.0.1:{env.backend}; root {env.root}; location / {{ }} }}",
    )
    process = subprocess.Popen(
        common.pinned(["nginx", "-c", str(conf), "-p", str(env.work)], common.CLIENT_CPUS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port(env.backend, 20):
            raise RuntimeError("nginx backend did not start")
        yield
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(20)


# -- load ------------------------------------------------------------------------------


@dataclass
class Load:
    """What one measured run did: requests, seconds, payload bytes."""

    requests: int
    seconds: float
    payload: int = 0


def h2load(url: str, requests: int, cpus: str = common.CLIENT_CPUS) -> Load:
    command = common.pinned(["h2load", "-n", str(requests), "-c", "10", "-m", "10", url], cpus)
    out = subprocess.run(command, capture_output=True, text=True, timeout=600).stdout
    done = re.search(r"(\d+) succeeded, (\d+) failed", out)
    took = re.search(r"finished in ([\d.]+)(m?s)", out)
    if not (done and took) or int(done.group(2)):
        raise RuntimeError(f"h2load failed on {url}:\n{out}")
    seconds = float(took.group(1)) / (1000 if took.group(2) == "ms" else 1)
    return Load(int(done.group(1)), seconds)


def curl(url: str, times: int) -> Load:
    """``times`` downloads one after another, body to /dev/null."""
    total_seconds, total_bytes = 0.0, 0
    for _ in range(times):
        out = subprocess.run(
            common.pinned(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
                common.CLIENT_CPUS,
            ),
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.split()
        total_bytes += int(float(out[0]))
        total_seconds += float(out[1])
    return Load(times, total_seconds, total_bytes)


#: case -> (label, unit of the rate column)
CASES: dict[str, str] = {
    "files-1k": "`file_server` 1 KiB, wrk -c50",
    "proxy-1k": "`reverse_proxy` 1 KiB to nginx, wrk -c50",
    "h2-1k": "TLS + h2 1 KiB file, h2load -c10 -m10",
    "files-1m": "`file_server` 1 MiB, wrk -c10",
    "download-100m": "`file_server` 100 MiB, curl x3",
}
PROFILED = ("files-1k", "proxy-1k", "h2-1k")


def drive(case: str, running: Running, seconds: float, h2_requests: int, cpus: str) -> Load:
    """One run of ``case`` against ``running`` (after the caller's warm-up)."""
    ports = running.ports
    if case == "files-1k":
        r = common.wrk(f"http://127.0.0.1:{ports.files}/1k.bin", seconds, 50, cpus=cpus)
        return check(case, r)
    if case == "files-1m":
        r = common.wrk(f"http://127.0.0.1:{ports.files}/1m.bin", seconds, 10, cpus=cpus)
        return check(case, r, 1 << 20)
    if case == "proxy-1k":
        r = common.wrk(f"http://127.0.0.1:{ports.proxy}/1k.bin", seconds, 50, cpus=cpus)
        return check(case, r)
    if case == "h2-1k":
        return h2load(f"https://127.0.0.1:{ports.tls}/1k.bin", h2_requests, cpus)
    if case == "download-100m":
        return curl(f"http://127.0.0.1:{ports.files}/100m.bin", 3)
    raise ValueError(case)


def check(case: str, result: common.WrkResult, size: int = 0) -> Load:
    """A run's load; non-2xx answers fail the benchmark (wrong config), socket errors
    (timeouts on a loaded machine) are reported and the run still counts."""
    if result.non_2xx:
        raise RuntimeError(f"{case}: {result.non_2xx} non-2xx answers")
    if result.errors:
        print(f"warning: {case}: {result.errors} socket errors", file=sys.stderr)
    return Load(result.requests, result.seconds, result.requests * size)


def warm_up(case: str, running: Running, h2_requests: int, cpus: str) -> None:
    if case == "download-100m":
        return
    drive(case, running, 1.0, max(100, h2_requests // 10), cpus)


@dataclass
class Result:
    rate: Samples = field(default_factory=Samples)  # req/s, or MiB/s for the download
    cpu_us: Samples = field(default_factory=Samples)
    rss: float = 0.0


def measure(
    case: str, running: Running, result: Result, args: argparse.Namespace, cpus: str
) -> None:
    warm_up(case, running, args.h2_requests, cpus)
    before = common.cpu_seconds(running.pid)
    with common.sampled_peak(lambda: common.rss_mib(running.pid), 0.02) as peak:
        load = drive(case, running, args.duration, args.h2_requests, cpus)
    used = common.cpu_seconds(running.pid) - before
    if case == "download-100m":
        result.rate.add(load.payload / (1 << 20) / load.seconds)
    else:
        result.rate.add(load.requests / load.seconds)
    result.cpu_us.add(used / max(1, load.requests) * 1e6)
    result.rss = max(result.rss, peak[0])


# -- the parts -------------------------------------------------------------------------


def single_core(env: Env, args: argparse.Namespace) -> str:
    servers = [s for s in SERVERS if s == "caddytw" or common.have(s)]
    if OTHER_TREE is not None:
        servers.insert(1, OTHER)
    results = {(case, s): Result() for case in CASES for s in servers}
    for index in range(args.rounds):
        for server in servers:
            with launched(env, server, common.SERVER_CPUS) as running:
                for case in CASES:
                    measure(case, running, results[case, server], args, common.CLIENT_CPUS)
                    r = results[case, server]
                    print(
                        f"round {index + 1} {case:<14} {server:<8} {r.rate.values[-1]:>10,.0f} "
                        f"{r.cpu_us.values[-1]:8.1f} µs/req",
                        file=sys.stderr,
                        flush=True,
                    )
    rows = []
    for case, label in CASES.items():
        for server in servers:
            r = results[case, server]
            caddy = results.get((case, "caddy"))
            unit = "MiB/s" if case == "download-100m" else "req/s"
            cpu = r.cpu_us.median
            rows.append(
                [
                    label,
                    server,
                    f"{r.rate.median:,.0f} {unit}",
                    common.percent(r.rate.spread),
                    f"{r.rate.ratio(caddy.rate):.2f}x" if caddy else "n/a",
                    f"{cpu / 1000:,.1f} ms" if case == "download-100m" else f"{cpu:,.1f}",
                    f"{cpu / caddy.cpu_us.median:.2f}x" if caddy else "n/a",
                    f"{r.rss:.1f}",
                ]
            )
    headers = [
        "case",
        "server",
        "rate (median)",
        "spread",
        "rate vs Caddy",
        "server CPU µs/req",
        "CPU vs Caddy",
        "peak RSS MiB",
    ]
    return (
        f"Servers on CPU {common.SERVER_CPUS}, load generator on CPU {common.CLIENT_CPUS}; "
        f"{args.rounds} interleaved rounds of {args.duration:g} s (h2: {args.h2_requests} "
        f"requests); load average before: {load_average()}.\n\n" + markdown_table(headers, rows)
    )


def workers(env: Env, args: argparse.Namespace) -> str:
    cases = ("files-1k", "proxy-1k")
    both = "0-1"
    runs = [("caddytw", 1), ("caddy", 1), ("caddytw", 2), ("caddy", 2)]
    if not common.have("caddy"):
        runs = [r for r in runs if r[0] == "caddytw"]
    results = {(case, run): Result() for case in cases for run in runs}
    for _ in range(args.rounds):
        for run in runs:
            server, count = run
            with launched(env, server, both, workers=count) as running:
                for case in cases:
                    measure(case, running, results[case, run], args, both)
    rows = []
    for case in cases:
        for run in runs:
            r = results[case, run]
            caddy = results.get((case, ("caddy", run[1])))
            label = f"--workers {run[1]}" if run[0] == "caddytw" else f"GOMAXPROCS={run[1]}"
            rows.append(
                [
                    CASES[case],
                    f"{run[0]} {label}",
                    f"{r.rate.median:,.0f}",
                    f"{r.rate.ratio(caddy.rate):.2f}x" if caddy else "n/a",
                    f"{r.cpu_us.median:,.1f}",
                ]
            )
    return "Workers: servers and wrk share CPUs 0-1 (scaling, not a ceiling).\n\n" + markdown_table(
        ["case", "server", "req/s", "vs Caddy (same N)", "CPU µs/req"], rows
    )


def profiles(env: Env, args: argparse.Namespace) -> str:
    out_dir = Path(args.profile_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for case in PROFILED:
        stats_file = env.work / f"profile-{case}.prof"
        with launched(env, "caddytw", common.SERVER_CPUS, profile=stats_file) as running:
            warm_up(case, running, args.h2_requests, common.CLIENT_CPUS)
            load = drive(case, running, args.duration, args.h2_requests, common.CLIENT_CPUS)
        deadline = time.monotonic() + 30
        while not stats_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not stats_file.exists():
            parts.append(f"{case}: no profile written")
            continue
        text = io.StringIO()
        stats = pstats.Stats(str(stats_file), stream=text)
        stats.strip_dirs().sort_stats("tottime").print_stats(25)
        by_total = io.StringIO()
        pstats.Stats(str(stats_file), stream=by_total).strip_dirs().sort_stats(
            "cumulative"
        ).print_stats(40)
        report = (
            f"{CASES[case]}: {load.requests} requests under cProfile\n\n{text.getvalue()}"
            f"\n\nBy cumulative time:\n{by_total.getvalue()}"
        )
        target = out_dir / f"profile-{case}.txt"
        target.write_text(report)
        top = [
            line
            for line in text.getvalue().splitlines()
            if re.match(r"\s*[\d/]+\s+[\d.]+\s+[\d.]+", line)
        ][:8]
        parts.append(
            f"**{CASES[case]}** (top by tottime; all 25 in `{target}`):\n\n```\n"
            + "\n".join(top)
            + "\n```"
        )
    return "\n\n".join(parts)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=common.rounds(3))
    parser.add_argument("--duration", type=float, default=common.duration())
    parser.add_argument("--h2-requests", type=int, default=20000)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-workers", action="store_true")
    parser.add_argument(
        "--compare", type=Path, help="another caddytw checkout, measured alongside (A/B)"
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="only the cProfile runs (no tables)"
    )
    parser.add_argument("--profile-dir", default=str(common.REPO / "bench" / "results"))
    args = parser.parse_args()
    global OTHER_TREE
    OTHER_TREE = args.compare.resolve() if args.compare else None
    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers may run as another user
        root = work / "site"
        root.mkdir()
        root.chmod(0o755)
        for name, size in SIZES.items():
            with open(root / name, "wb") as handle:
                for start in range(0, size, 1 << 20):
                    handle.write(os.urandom(min(1 << 20, size - start)))
        cert, key, _ = TestCA().write_leaf(work, "bench", ["localhost", "127.0.0.1"])
        env = Env(work, root, cert, key, free_port())
        sections = []
        with backend(env):
            if not args.profile_only:
                sections.append(single_core(env, args))
            if not args.no_workers and not args.profile_only and (os.cpu_count() or 1) >= 2:
                sections.append(workers(env, args))
            if not args.no_profile:
                sections.append(profiles(env, args))
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
