"""file_sync on one and on two nodes sharing a PostgreSQL index (not part of CI).

    PYTHONPATH=. python bench/pg_nodes.py [--uploads 400] [--writers 4] [--samples 40]

Starts its own PostgreSQL cluster (tests/support/postgres.py: Debian's postgresql, run
as the postgres user when started as root) and real ``twistd caddy`` nodes on one
shared folder, then measures for each setup:

- uploads/s: ``--uploads`` new 4 KiB files sent by ``--writers`` threads, each on one
  keep-alive connection, the writers spread over the nodes;
- change-to-client latency: from sending an upload through the first node to the event
  arriving on a WebSocket of the last node (median and 90th percentile of
  ``--samples``), i.e. through LISTEN/NOTIFY when there are two nodes.

The single-node SQLite index is measured too, as the baseline. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.ports import free_port
from tests.support.postgres import start_cluster
from tests.support.server import ServerProcess, simple_config, start_server
from tests.sync_server.helpers import Api, WebSocket


def node(workdir: Path, root: Path, index: dict[str, Any] | None) -> ServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    handler: dict[str, Any] = {
        "handler": "file_sync",
        "root": str(root),
        "enable_upload": True,
        "create_root": True,
    }
    if index is not None:
        handler["index"] = index
    port = free_port()
    config = simple_config(port, [{"match": [{"path": ["/api/*"]}], "handle": [handler]}])
    env = {"XDG_DATA_HOME": str(workdir / "xdg")}
    server = start_server(config, workdir, [port], env=env)
    Api(port).listing()  # the index is open
    return server


def uploads_per_second(ports: list[int], count: int, writers: int, tag: str) -> float:
    body = os.urandom(4096)
    per_writer = count // writers

    def write(number: int) -> None:
        api = Api(ports[number % len(ports)])
        for item in range(per_writer):
            reply = api.upload(f"{tag}/w{number}/{item}.bin", body, If_None_Match="*")
            assert reply.status == 201, reply
        api.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_writer * writers / (time.perf_counter() - started)


def latency_ms(ports: list[int], samples: int, tag: str) -> tuple[float, float]:
    events = WebSocket(ports[-1])
    api = Api(ports[0])
    times: list[float] = []
    try:
        for number in range(samples):
            path = f"{tag}/latency-{number}.txt"
            started = time.perf_counter()
            assert api.upload(path, b"x" * 64).status == 201
            while True:
                message = events.message()
                if message["path"] == path:
                    break
            times.append((time.perf_counter() - started) * 1000)
    finally:
        events.close()
        api.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=400)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    cluster = start_cluster()
    if cluster is None:
        sys.exit("PostgreSQL (initdb, pg_ctl) and psycopg are needed")
    rows: list[str] = []
    try:
        setups: list[tuple[str, dict[str, Any] | None, int]] = [
            ("1 node, SQLite index", None, 1),
            ("1 node, PostgreSQL index", {}, 1),
            ("2 nodes, one PostgreSQL index", {}, 2),
        ]
        for label, index, count in setups:
            with tempfile.TemporaryDirectory(prefix="pg-nodes-bench-") as temp:
                base = Path(temp)
                config = None
                if index is not None:
                    config = {"module": "postgres", "connection_string": cluster.new_database()}
                servers = [node(base / f"n{n}", base / "shared", config) for n in range(count)]
                try:
                    ports = [server.ports[0] for server in servers]
                    rate = uploads_per_second(ports, args.uploads, args.writers, "up")
                    median, p90 = latency_ms(ports, args.samples, "lat")
                finally:
                    for server in servers:
                        server.stop()
            rows.append(f"| {label} | {rate:.0f} | {median:.1f} | {p90:.1f} |")
            print(rows[-1], file=sys.stderr)
    finally:
        cluster.destroy()
    print(f"uploads: {args.uploads} x 4 KiB by {args.writers} writers; {args.samples} samples")
    print("| setup | uploads/s | change-to-client median ms | p90 ms |")
    print("| --- | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
