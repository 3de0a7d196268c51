"""Two ``twistd`` nodes serving one shared folder with one index on PostgreSQL
(``file_sync``'s ``"index": {"module": "postgres", ...}``).

Each node is a real server process with its own data directory; the folder is a local
directory both mount (NFS in production); the database is a real PostgreSQL cluster
started for the session (tests/support/postgres.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.postgres import PostgresCluster
from tests.support.server import simple_config
from tests.sync_server.helpers import Api, WebSocket, sha
from tests.synclient.harness import Client, SyncServer, tree, wait_until


class Node(SyncServer):
    """A ``file_sync`` server on the shared folder ``root`` with the PostgreSQL index."""

    def __init__(self, workdir: Path, root: Path, url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.root = root
        self.database = url

    def config(self) -> dict[str, Any]:
        handler = {
            "handler": "file_sync",
            "root": str(self.root),
            "enable_upload": True,
            "create_root": True,
            "index": {"module": "postgres", "connection_string": self.database},
        }
        return simple_config(self.port, [{"match": [{"path": ["/api/*"]}], "handle": [handler]}])

    def start(self) -> Node:
        from tests.support.server import start_server

        env = {"XDG_DATA_HOME": str(self.workdir / "xdg")}
        self.process = start_server(self.config(), self.workdir, [self.port], env=env)
        return self


def test_an_upload_through_one_node_is_listed_by_the_other(nodes: tuple[Node, Node]) -> None:
    first, second = nodes
    one, two = Api(first.port), Api(second.port)
    reply = one.upload("docs/a.txt", b"hello", If_None_Match="*")
    assert reply.status == 201, reply
    listed = two.listing()
    assert listed["docs/a.txt"]["hash"] == sha(b"hello")
    assert listed["docs"]["is_directory"]
    assert two.download("docs/a.txt").body == b"hello"
    # Both nodes hand out the same journal: node 2 sees node 1's change since cursor 0.
    page = two.call("GET", "list").json()
    assert {item["path"] for item in page} == {"docs", "docs/a.txt"}


def test_an_event_client_of_one_node_hears_the_other_nodes_commit(
    nodes: tuple[Node, Node],
) -> None:
    first, second = nodes
    assert Api(second.port).call("GET", "list").status == 200  # node 2's index is open
    events = WebSocket(second.port)
    assert events.accepted, events.head
    try:
        assert Api(first.port).upload("news.txt", b"fresh").status == 201
        message = events.message()
        assert message["path"] == "news.txt"
        assert message["metadata"]["hash"] == sha(b"fresh")
    finally:
        events.close()


def test_a_synclient_of_node_two_receives_node_ones_change(
    nodes: tuple[Node, Node], tmp_path: Path
) -> None:
    first, second = nodes
    assert Api(second.port).upload("before.txt", b"first").status == 201
    # A long safety-net interval: only the WebSocket push can deliver node 1's change
    # within the wait below.
    client = Client(second, tmp_path / "client").start("--interval", "600")
    try:
        wait_until(
            lambda: tree(client.root).get("before.txt") == sha(b"first"),
            30,
            "the client's first pass",
        )
        time.sleep(1)  # let the client open its event stream after its first pass
        assert Api(first.port).upload("from-node-1.txt", b"pushed").status == 201
        wait_until(
            lambda: tree(client.root).get("from-node-1.txt") == sha(b"pushed"),
            20,
            "node 1's file in the client of node 2",
        )
    finally:
        client.stop()


def race(path: str, ports: dict[int, int], round_number: int) -> dict[int, int]:
    """Upload ``path`` as a new file through every node at once; each node's status."""
    results: dict[int, int] = {}
    start = threading.Barrier(len(ports))

    def put(index: int, port: int) -> None:
        api = Api(port)
        start.wait()
        body = f"node {index} {round_number}".encode() * 1000
        results[index] = api.upload(path, body, If_None_Match="*").status
        api.close()

    threads = [threading.Thread(target=put, args=item) for item in ports.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_the_same_new_path_through_both_nodes_gives_one_201_and_one_412(
    nodes: tuple[Node, Node],
) -> None:
    first, second = nodes
    for round_number in range(6):
        path = f"race/{round_number}.txt"
        results = race(path, {1: first.port, 2: second.port}, round_number)
        assert sorted(results.values()) == [201, 412], (round_number, results)
        winner = 1 if results[1] == 201 else 2
        data = f"node {winner} {round_number}".encode() * 1000
        assert (first.root / path).read_bytes() == data
        assert Api(second.port).listing()[path]["hash"] == sha(data)


def test_a_node_killed_mid_upload_leaves_no_file_and_no_entry(
    nodes: tuple[Node, Node],
) -> None:
    first, second = nodes
    size = 8 << 20
    with socket.create_connection(("127.0.0.1", first.port)) as sock:
        sock.sendall(
            (
                "POST /api/upload?path=big.bin HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{first.port}\r\nX-Requested-With: t\r\n"
                f"Content-Length: {size}\r\nIf-None-Match: *\r\n\r\n"
            ).encode()
            + b"x" * (size // 2)
        )
        time.sleep(0.5)  # the server is reading the body (nothing to wait on from here)
        assert first.process is not None
        first.process.process.send_signal(signal.SIGKILL)
        first.process.process.wait(10)
        first.process = None
    assert "big.bin" not in Api(second.port).listing()
    assert not (first.root / "big.bin").exists()
    visible = [name for name in os.listdir(first.root) if not name.startswith(".")]
    assert visible == []
    # The node comes back; the path is still free for a new upload anywhere.
    first.start()
    assert Api(second.port).upload("big.bin", b"small", If_None_Match="*").status == 201
    assert Api(first.port).listing()["big.bin"]["hash"] == sha(b"small")


def test_postgres_restarted_under_load_loses_nothing(
    nodes: tuple[Node, Node], postgres: PostgresCluster
) -> None:
    first, second = nodes
    acknowledged: dict[str, str] = {}
    stop = threading.Event()
    failures: list[str] = []

    def writer(name: str, port: int) -> None:
        api = Api(port)
        number = 0
        while not stop.is_set():
            path = f"{name}/{number}.txt"
            data = f"{name} {number}".encode()
            reply = api.upload(path, data, If_None_Match="*")
            if reply.status == 201 or (reply.status == 200 and reply.json()["hash"] == sha(data)):
                acknowledged[path] = sha(data)
                number += 1
            elif reply.status == 503:
                time.sleep(0.1)  # the index is unreachable: retry the same file
            else:
                failures.append(f"{path}: {reply}")
                return
        api.close()

    threads = [
        threading.Thread(target=writer, args=("one", first.port)),
        threading.Thread(target=writer, args=("two", second.port)),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 10, 30, "uploads before the restart")
        postgres.restart(mode="immediate")
        before = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= before + 10, 60, "uploads after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures
    for node in (first, second):
        listed = Api(node.port).listing()
        missing = {p for p, h in acknowledged.items() if listed.get(p, {}).get("hash") != h}
        assert not missing, (node.port, sorted(missing))
    assert json.dumps(sorted(acknowledged)) and len(acknowledged) >= 20


def test_a_node_started_while_postgres_is_down_serves_once_it_is_up(
    tmp_path: Path, pg_url: str, postgres: PostgresCluster
) -> None:
    node = Node(tmp_path / "node", tmp_path / "shared", pg_url)
    postgres.stop()
    try:
        node.start()
        reply = Api(node.port).call("GET", "list")
        assert reply.status == 503, reply
        assert "error" in reply.json()
    finally:
        postgres.start()
    try:
        wait_until(
            lambda: Api(node.port).call("GET", "list").status == 200, 60, "the node to serve"
        )
        assert Api(node.port).upload("late.txt", b"late").status == 201
        assert node.process is not None
        assert "the sync index database postgres://postgres@127.0.0.1" in node.process.log()
    finally:
        node.stop()
