"""Sync server throughput vs an rsync daemon, over loopback (not part of CI).

    PYTHONPATH=. python bench/sync.py [--big-mib 1024] [--small-count 10000]

Starts a real ``twistd caddy`` with a ``file_sync`` handler and a Debian
``rsync --daemon`` on free loopback ports, then measures: one big file up and down,
and many 4 KiB files up and down (sync: one keep-alive HTTP connection, one request
per file, hash header sent; rsync: one ``rsync -r`` run over the folder). Peak server
RSS comes from /proc (VmHWM). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import rsync_daemon

from tests.support.ports import free_port
from tests.support.server import simple_config, start_server

CHUNK = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_big(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with open(path, "wb") as out:
        for index in range(mib):
            chunk = block[:-8] + index.to_bytes(8, "big")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def http_upload_file(port: int, name: str, source: Path, digest: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    size = source.stat().st_size
    conn.putrequest("POST", f"/api/upload?path={quote(name, safe='')}")
    conn.putheader("Content-Length", str(size))
    conn.putheader("X-Content-SHA256", digest)
    conn.endheaders()
    with open(source, "rb") as data:
        while chunk := data.read(CHUNK):
            conn.send(chunk)
    response = conn.getresponse()
    response.read()
    assert response.status in (200, 201), response.status
    conn.close()


def http_download_file(port: int, name: str, target: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", f"/api/download?path={quote(name, safe='')}")
    response = conn.getresponse()
    assert response.status == 200, response.status
    with open(target, "wb") as out:
        while chunk := response.read(CHUNK):
            out.write(chunk)
    conn.close()


def http_many(port: int, files: list[tuple[str, bytes]], upload: bool) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for name, data in files:
        if upload:
            headers = {"X-Content-SHA256": hashlib.sha256(data).hexdigest()}
            conn.request("POST", f"/api/upload?path={quote(name, safe='')}", data, headers)
        else:
            conn.request("GET", f"/api/download?path={quote(name, safe='')}")
        response = conn.getresponse()
        body = response.read()
        assert response.status in (200, 201), response.status
        assert upload or body == data
    conn.close()


def timed(work: object) -> float:
    start = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small-count", type=int, default=10000)
    parser.add_argument("--small-size", type=int, default=4096)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="syncbench-"))
    rows: list[tuple[str, str, float, float]] = []
    try:
        src = work / "src"
        src.mkdir()
        big = src / "big.bin"
        digest = make_big(big, args.big_mib)
        small_dir = src / "small"
        small_dir.mkdir()
        files = []
        for index in range(args.small_count):
            data = os.urandom(args.small_size)
            name = f"small/d{index // 1000:02d}/f{index:05d}.bin"
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
            files.append((name, data))
        big_bytes = big.stat().st_size
        small_bytes = args.small_count * args.small_size

        # -- caddytw file_sync --
        port = free_port()
        route = [
            {
                "match": [{"matcher": "path", "paths": ["/api/*"]}],
                "handle": [
                    {"handler": "file_sync", "root": str(work / "sync-root"), "enable_upload": True}
                ],
            }
        ]
        server = start_server(simple_config(port, route), work, [port])
        try:
            t = timed(lambda: http_upload_file(port, "big.bin", big, digest))
            rows.append(("file_sync", f"upload 1 x {args.big_mib} MiB", t, big_bytes / t))
            t = timed(lambda: http_download_file(port, "big.bin", work / "down.bin"))
            rows.append(("file_sync", f"download 1 x {args.big_mib} MiB", t, big_bytes / t))
            (work / "down.bin").unlink()
            t = timed(lambda: http_many(port, files, upload=True))
            rows.append(("file_sync", f"upload {args.small_count} x 4 KiB", t, small_bytes / t))
            t = timed(lambda: http_many(port, files, upload=False))
            rows.append(("file_sync", f"download {args.small_count} x 4 KiB", t, small_bytes / t))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            t_list = time.perf_counter()
            conn.request("GET", "/api/list")
            listed = json.loads(conn.getresponse().read())
            t_list = time.perf_counter() - t_list
            rss = peak_rss_mib(server.process.pid)
        finally:
            server.stop()

        # -- rsync daemon --
        module = work / "rsync-root"
        module.mkdir()
        with rsync_daemon(work, module) as rport:
            url = f"rsync://127.0.0.1:{rport}/m/"

            def rsync(*argv: str) -> None:
                subprocess.run(["rsync", "-rt", "--whole-file", *argv], check=True)

            t = timed(lambda: rsync(str(big), url))
            rows.append(("rsync", f"upload 1 x {args.big_mib} MiB", t, big_bytes / t))
            t = timed(lambda: rsync(url + "big.bin", str(work / "down.bin")))
            rows.append(("rsync", f"download 1 x {args.big_mib} MiB", t, big_bytes / t))
            t = timed(lambda: rsync(str(small_dir), url))
            rows.append(("rsync", f"upload {args.small_count} x 4 KiB", t, small_bytes / t))
            t = timed(lambda: rsync(url + "small", str(work / "down-small")))
            rows.append(("rsync", f"download {args.small_count} x 4 KiB", t, small_bytes / t))

        print("| server | transfer | seconds | MiB/s |")
        print("| --- | --- | ---: | ---: |")
        for who, what, seconds, rate in rows:
            print(f"| {who} | {what} | {seconds:.2f} | {rate / 2**20:.1f} |")
        print()
        print(f"file_sync peak server RSS (VmHWM): {rss:.0f} MiB")
        print(f"file_sync GET /api/list with {len(listed)} entries: {t_list * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
