"""HTTP/3 benchmark: requests/s and MB/s over h3 against h2 and h1 on the same server,
and against Caddy's own h3 (Debian caddy) when it is installed. Not run in CI.

    PYTHONPATH=. python bench/h3.py [--requests 2000] [--concurrency 20] [--mb 20]

h3 is driven by aioquic's asyncio client (Python: on 2 shared cores the client costs
about as much as the server, so h3 numbers are a floor); h1 and h2 by h2load. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aioquic.asyncio.client import connect  # noqa: E402
from aioquic.h3.connection import H3_ALPN  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402

from tests.h3.conftest import make_certificate, start_h3_server  # noqa: E402
from tests.h3.h3client import H3Client  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402

SMALL_BODY = "x" * 1024


async def h3_run(port: int, path: str, total: int, concurrency: int) -> tuple[float, int]:
    """``total`` GETs of ``path``, ``concurrency`` streams at a time on one connection;
    returns (seconds, bytes received)."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    configuration.verify_mode = ssl.CERT_NONE
    configuration.server_name = "localhost"
    configuration.max_data = 64 << 20
    configuration.max_stream_data = 32 << 20
    async with connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=H3Client
    ) as client:
        assert isinstance(client, H3Client)
        received = 0
        left = total
        authority = f"localhost:{port}"

        async def worker() -> None:
            nonlocal left, received
            while left > 0:
                left -= 1
                exchange = await client.request({"path": path}, authority)
                await exchange.done
                assert exchange.status == 200, exchange.error
                received += exchange.length

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, received


def h3_bench(port: int, path: str, total: int, concurrency: int) -> tuple[float, int]:
    return asyncio.run(h3_run(port, path, total, concurrency))


def h2load(url: str, total: int, clients: int, streams: int, h1: bool) -> tuple[float, int]:
    args = ["h2load", "-n", str(total), "-c", str(clients), "-m", str(streams), url]
    if h1:
        args.insert(1, "--h1")
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    finished = re.search(r"finished in ([\d.]+)(m?s)", out)
    traffic = re.search(r"traffic: [^(]*\((\d+)\) total", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not (finished and traffic and done) or done.group(2) != str(total):
        raise RuntimeError(f"h2load failed:\n{out}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return seconds, int(traffic.group(1))


def start_caddy(workdir: Path, blob: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    if shutil.which("caddy") is None:
        return None
    port = free_port()
    cert, key = make_certificate(["localhost", "127.0.0.1"], workdir, stem="caddy")
    config = {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(workdir / "caddy-data")},
        "apps": {
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
            "http": {
                "servers": {
                    "bench": {
                        "listen": [f"127.0.0.1:{port}"],
                        "protocols": ["h1", "h2", "h3"],
                        "automatic_https": {"disable": True},
                        "tls_connection_policies": [{}],
                        "routes": [
                            {
                                "match": [{"path": ["/blob"]}],
                                "handle": [
                                    {"handler": "rewrite", "uri": "/" + blob.name},
                                    {"handler": "file_server", "root": str(blob.parent)},
                                ],
                            },
                            {"handle": [{"handler": "static_response", "body": SMALL_BODY}]},
                        ],
                    }
                }
            },
        },
    }
    path = workdir / "caddy.json"
    path.write_text(json.dumps(config))
    env = {"HOME": str(workdir), "XDG_DATA_HOME": str(workdir), "PATH": "/usr/bin:/bin"}
    log = open(workdir / "caddy.log", "wb")  # noqa: SIM115 (lives as long as caddy)
    process = subprocess.Popen(
        ["caddy", "run", "--config", str(path)], stdout=log, stderr=log, env=env
    )
    if not wait_for_port(port, 15):
        process.terminate()
        return None
    time.sleep(0.5)  # the UDP listener starts just after the TCP one
    return process, port


def row(name: str, proto: str, kind: str, seconds: float, count: int, size: int) -> str:
    if kind == "small":
        return f"| {name} | {proto} | {count} x 1 KiB | {count / seconds:,.0f} req/s | |"
    rate = size * count / seconds / 1e6
    return f"| {name} | {proto} | {count} x {size >> 20} MiB | | {rate:,.1f} MB/s |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--mb", type=int, default=20)
    options = parser.parse_args()
    n, c, mb = options.requests, options.concurrency, options.mb
    size = mb << 20
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        blob = workdir / "blob.bin"
        from tests.h3.h3client import pattern

        blob.write_bytes(pattern(size))
        routes = [
            {"match": [{"path": ["/blob"]}], "handle": [{"handler": "h3test_blob", "size": size}]},
            {"handle": [{"handler": "static_response", "body": SMALL_BODY}]},
        ]
        server = start_h3_server(routes, workdir)
        try:
            url = f"https://127.0.0.1:{server.port}"
            secs, _ = h3_bench(server.port, "/", n, c)
            rows.append(row("caddytw", "h3", "small", secs, n, 0))
            secs, _ = h2load(url + "/", n, 1, c, h1=False)
            rows.append(row("caddytw", "h2", "small", secs, n, 0))
            secs, _ = h2load(url + "/", n, c, 1, h1=True)
            rows.append(row("caddytw", "h1", "small", secs, n, 0))
            secs, got = h3_bench(server.port, "/blob", 3, 1)
            assert got == 3 * size
            rows.append(row("caddytw", "h3", "big", secs, 3, size))
            secs, _ = h2load(url + "/blob", 3, 1, 1, h1=False)
            rows.append(row("caddytw", "h2", "big", secs, 3, size))
            secs, _ = h2load(url + "/blob", 3, 1, 1, h1=True)
            rows.append(row("caddytw", "h1", "big", secs, 3, size))
        finally:
            server.stop()
        caddy = start_caddy(workdir, blob)
        if caddy is not None:
            process, port = caddy
            try:
                url = f"https://127.0.0.1:{port}"
                secs, _ = h3_bench(port, "/", n, c)
                rows.append(row("caddy 2.6", "h3", "small", secs, n, 0))
                secs, _ = h2load(url + "/", n, 1, c, h1=False)
                rows.append(row("caddy 2.6", "h2", "small", secs, n, 0))
                secs, _ = h2load(url + "/", n, c, 1, h1=True)
                rows.append(row("caddy 2.6", "h1", "small", secs, n, 0))
                secs, got = h3_bench(port, "/blob", 3, 1)
                assert got == 3 * size
                rows.append(row("caddy 2.6", "h3", "big", secs, 3, size))
                secs, _ = h2load(url + "/blob", 3, 1, 1, h1=False)
                rows.append(row("caddy 2.6", "h2", "big", secs, 3, size))
            finally:
                process.terminate()
                process.wait(timeout=10)
    print(
        f"requests={n} concurrency={c} (h3: streams on 1 connection; h2: 1 connection, "
        f"{c} streams; h1: {c} connections)\n"
    )
    print("| server | protocol | work | requests/s | throughput |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
