"""TLS + HTTP/2 benchmark: h2load against caddytw and Debian's Caddy, same files, same cert.

    PYTHONPATH=. python bench/tls_h2.py [--requests 4000] [--clients 4] [--streams 10]

Both servers load the same certificate (``load_files``) and answer the same bodies: a
1 KiB file and a 256 KiB file (``file_server`` when caddytw has it, else
``static_response`` with the file's bytes, on both servers alike). Each row is one
h2load run (HTTP/2 over TLS, and HTTP/1.1 over TLS for comparison). Prints Markdown;
not run in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.server import start_server  # noqa: E402
from tests.tls.pki import TestCA  # noqa: E402

FILES = {"small.txt": 1024, "large.bin": 256 * 1024}


def have_file_server() -> bool:
    from caddytw.handlers.registry import handler_factories

    return "file_server" in handler_factories()


def routes(root: Path, file_server: bool) -> list[dict[str, Any]]:
    if file_server:
        return [{"handle": [{"handler": "file_server", "root": str(root)}]}]
    return [
        {
            "match": [{"path": [f"/{name}"]}],
            "handle": [
                {
                    "handler": "static_response",
                    "body": (root / name).read_text(),
                    "headers": {"Content-Type": ["application/octet-stream"]},
                }
            ],
        }
        for name in FILES
    ]


def config(port: int, root: Path, cert: Path, key: Path, file_server: bool) -> dict[str, Any]:
    return {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(root.parent / f"storage-{port}")},
        "apps": {
            "http": {
                "http_port": free_port(),
                "https_port": port,
                "servers": {
                    "bench": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": routes(root, file_server),
                        "tls_connection_policies": [{}],
                        "automatic_https": {"disable": True},
                        "protocols": ["h1", "h2"],
                    }
                },
            },
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }


def h2load(url: str, total: int, clients: int, streams: int, h1: bool) -> float:
    args = ["h2load", "-n", str(total), "-c", str(clients), "-m", str(streams), url]
    if h1:
        args.insert(1, "--h1")
    output = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    done = re.search(r"(\d+) succeeded, (\d+) failed", output)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
    if not (done and rate) or int(done.group(2)):
        raise RuntimeError(f"h2load failed:\n{output}")
    return float(rate.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--streams", type=int, default=10)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tls-h2-bench-"))
    root = work / "site"
    root.mkdir()
    for name, size in FILES.items():
        (root / name).write_text("x" * size)
    cert, key, _ = TestCA().write_leaf(work, "bench", ["localhost", "127.0.0.1"])
    file_server = have_file_server()
    ours, theirs = free_port(), free_port()
    servers = []
    try:
        servers.append(start_server(config(ours, root, cert, key, file_server), work, [ours]))
        caddy_bin = shutil.which("caddy")
        if caddy_bin:
            path = work / "caddy.json"
            path.write_text(json.dumps(config(theirs, root, cert, key, file_server)))
            caddy = subprocess.Popen(
                [caddy_bin, "run", "--config", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={"HOME": str(work), "XDG_DATA_HOME": str(work), "PATH": "/usr/bin:/bin"},
            )
            if not wait_for_port(theirs, 15):
                raise RuntimeError("caddy did not start")
        print(
            f"h2load -n {options.requests} -c {options.clients} -m {options.streams}; "
            f"handler: {'file_server' if file_server else 'static_response'}\n"
        )
        print("| body | protocol | caddytw req/s | Caddy req/s | caddytw / Caddy |")
        print("|---|---|---:|---:|---:|")
        for name in FILES:
            for h1 in (False, True):
                total = options.requests if name == "small.txt" else options.requests // 4
                mine = h2load(
                    f"https://127.0.0.1:{ours}/{name}", total, options.clients, options.streams, h1
                )
                other = (
                    h2load(
                        f"https://127.0.0.1:{theirs}/{name}",
                        total,
                        options.clients,
                        options.streams,
                        h1,
                    )
                    if caddy_bin
                    else float("nan")
                )
                label = "h1 (TLS)" if h1 else "h2 (TLS)"
                print(
                    f"| {name} ({FILES[name] // 1024} KiB) | {label} | {mine:,.0f} | "
                    f"{other:,.0f} | {mine / other:.2f} |"
                )
                time.sleep(0.2)
    finally:
        for server in servers:
            server.stop()
        if caddy_bin:
            caddy.terminate()
            caddy.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
