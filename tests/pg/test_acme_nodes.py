"""Two ``twistd`` nodes sharing the ``postgres`` TLS storage, against a real pebble.

Pebble's challenge ports point at node 2 only, and node 1 places the order: the
validation succeeds only if node 2 answers a challenge it did not start (loaded from
the shared storage). The order lock is held by the test while both nodes start, so
both queue on it (PostgreSQL grants advisory locks in arrival order) and node 1 gets it
first: deterministic, no sleeps. Pebble then saw exactly one order for the name, and
node 2 serves node 1's certificate without ordering.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from caddytw.tls.pgstore import PostgresStorage
from tests.support.ports import free_port
from tests.support.server import ServerProcess, start_server
from tests.tls.client import client_context, handshake
from tests.tls.pebble import running_pebble
from tests.tls.test_acme_pebble import NAME, acme_config, wait_for_acme_certificate


def waiting_for_locks(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return int(row[0]) if row else 0


def wait_for(condition: Any, what: str, nodes: list[ServerProcess]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(n.log() for n in nodes))
        time.sleep(0.1)


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_one_order_across_two_nodes_answered_by_the_other_node(
    tmp_path: Path, pg_url: str, challenge: str
) -> None:
    (http1, https1), (http2, https2) = (free_port(), free_port()), (free_port(), free_port())
    if challenge == "http-01":
        challenges: dict[str, Any] = {"tls-alpn": {"disabled": True}}
    else:
        challenges = {"http": {"disabled": True}}
    nodes: list[ServerProcess] = []
    with running_pebble(tmp_path / "pebble", http2, https2) as pebble:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())

        def config(http_port: int, https_port: int) -> dict[str, Any]:
            data = acme_config(
                pebble, http_port, https_port, tmp_path / "unused", challenges=challenges
            )
            data["storage"] = {"module": "postgres", "connection_string": pg_url}
            return data

        gate = PostgresStorage(pg_url)
        try:
            with gate.lock(f"issue_cert_{NAME}"):
                for number, (http, https) in enumerate(((http1, https1), (http2, https2))):
                    workdir = tmp_path / f"node{number + 1}"
                    workdir.mkdir()
                    nodes.append(start_server(config(http, https), workdir, [https, http]))
                    wait_for(lambda n=number: waiting_for_locks(pg_url) == n + 1, "lock", nodes)
            first, second = nodes
            serial = wait_for_acme_certificate(first, https1, root)
            assert wait_for_acme_certificate(second, https2, root) == serial
            assert handshake(https2, NAME, client_context(str(root))).serial == serial
            if challenge == "http-01":
                # A restarted node reads the certificate from the database (in a worker
                # thread) and serves it; it orders nothing.
                second.stop()
                again = start_server(config(http2, https2), tmp_path / "node2", [https2, http2])
                nodes.append(again)
                assert wait_for_acme_certificate(again, https2, root) == serial
                assert "loaded certificate for localhost from storage" in again.log()
                assert "ordered certificate" not in again.log()
        finally:
            gate.close()
            logs = [node.log() for node in nodes]
            for node in nodes:
                node.stop()
        pebble_log = pebble.log()
    # Node 1 ordered and published its challenge; node 2 (the only one pebble could
    # reach) answered it from the shared storage and ordered nothing itself.
    assert logs[0].count("ordered certificate for localhost") == 1, logs[0]
    assert f"serving {challenge} challenge" in logs[0]
    assert "ordered certificate" not in logs[1], logs[1]
    assert "pending challenges from the shared storage" in logs[1]
    assert pebble_log.count("POST /order-plz") == 1, pebble_log
