"""Races, cut connections, restarts, WebSocket pushes and the seed's own config."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from caddytw.server.build import validate
from caddytw.sync.protocol import Change
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import (
    Api,
    WebSocket,
    folder_view,
    listing_view,
    sha,
    sync_route,
    wait_until_open,
)

SEED = Path(__file__).parent / "fixtures" / "seed-sync-config.json"


def test_seed_config_is_valid_verbatim():
    assert validate(json.loads(SEED.read_text())) == []


def test_seed_config_runs_with_curl(tmp_path):
    """The seed's config, only its listen address moved to a free loopback port."""
    port = free_port()
    text = SEED.read_text().replace('":8080"', f'"127.0.0.1:{port}"')
    assert text.count(str(port)) == 1
    (tmp_path / "sync-data").mkdir()  # never created by file_sync without create_root
    with running_server(text, tmp_path, [port]):
        base = f"http://127.0.0.1:{port}/api"
        (tmp_path / "local.txt").write_bytes(b"from curl\n")

        def curl(*args: str) -> str:
            done = subprocess.run(
                ["curl", "-sS", "--max-time", "10", *args], capture_output=True, check=True
            )
            return done.stdout.decode()

        uploaded = json.loads(
            curl(
                "-H",
                "X-Requested-With: curl",
                "--data-binary",
                f"@{tmp_path / 'local.txt'}",
                f"{base}/upload?path=docs/file.txt",
            )
        )
        assert uploaded["hash"] == sha(b"from curl\n")
        listing = json.loads(curl(f"{base}/list"))
        assert {"path", "size", "modified", "hash", "is_directory"} == set(listing[-1])
        assert curl(f"{base}/download?path=docs/file.txt") == "from curl\n"
        assert json.loads(curl(f"{base}/metadata?path=docs/file.txt"))["size"] == 10
        assert (tmp_path / "sync-data" / "docs" / "file.txt").exists()


@pytest.fixture
def server(tmp_path):
    port = free_port()
    root = tmp_path / "data"
    config = simple_config(port, sync_route(root, enable_upload=True))
    with running_server(config, tmp_path, [port]) as srv:
        wait_until_open(port)
        srv.root = root
        yield srv


def test_concurrent_uploads_exactly_one_wins(server):
    port = server.ports[0]
    for round_number in range(3):
        path = f"race/{round_number}.bin"
        bodies = [bytes([n]) * (2 * 1024 * 1024) for n in (1, 2)]
        replies: list = [None, None]
        barrier = threading.Barrier(2)

        def send(index: int, path=path, bodies=bodies, barrier=barrier, replies=replies) -> None:
            api = Api(port)
            barrier.wait()
            replies[index] = api.upload(
                path, bodies[index], If_None_Match="*", **{"X-Content-SHA256": sha(bodies[index])}
            )
            api.close()

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        statuses = sorted(reply.status for reply in replies)
        assert statuses == [201, 412], replies
        winner = bodies[[r.status for r in replies].index(201)]
        assert (server.root / path).read_bytes() == winner
    assert listing_view(Api(port).listing()) == folder_view(server.root)


def test_killed_upload_leaves_no_trace(server):
    api = Api(server.ports[0])
    api.upload("keep.txt", b"keep")
    before = folder_view(server.root)
    cursor = api.call("GET", "list?since=0").json()["cursor"]
    for sent in (0, 100_000, 3_000_000):
        with socket.create_connection(("127.0.0.1", server.ports[0])) as sock:
            sock.sendall(
                b"POST /api/upload?path=killed.bin HTTP/1.1\r\nHost: localhost\r\n"
                b"X-Requested-With: test\r\n"
                b"Content-Length: 10000000\r\n\r\n" + b"z" * sent
            )
            time.sleep(0.2)
    time.sleep(0.3)
    assert folder_view(server.root) == before
    assert not [p for p in server.root.rglob("*") if p.name.endswith(".tmp")]
    assert api.call("GET", "list?since=0").json()["cursor"] == cursor
    assert api.upload("after.txt", b"still fine").status == 201


def test_restart_keeps_the_index(tmp_path):
    """(A lost index is refused, not rebuilt: test_folder_marker.py.)"""
    port = free_port()
    root = tmp_path / "data"
    config = simple_config(port, sync_route(root, enable_upload=True))
    with running_server(config, tmp_path, [port]):
        api = Api(port)
        for index in range(20):
            api.upload(f"dir{index % 3}/f{index}.txt", str(index).encode())
        api.call("DELETE", "file?path=dir0/f0.txt")
        old = api.call("GET", "list?since=0").json()
        api.close()
    # restart with the index intact: same id, same cursor, tombstones kept
    with running_server(config, tmp_path, [port]):
        api = Api(port)
        again = api.call("GET", f"list?since=0&index_id={old['index_id']}").json()
        assert (again["index_id"], again["cursor"]) == (old["index_id"], old["cursor"])
        assert any(c["op"] == "delete" for c in again["changes"])
        api.close()


def test_websocket_events_reach_every_client(server):
    port = server.ports[0]
    sockets = [WebSocket(port) for _ in range(3)]
    assert all(ws.accepted for ws in sockets)
    time.sleep(0.2)
    api = Api(port)
    api.upload("ws/one.txt", b"1", **{"X-Sync-Client": "client-a"})
    api.call("DELETE", "file?path=ws/one.txt")
    for ws in sockets:
        received = [Change.from_json(ws.message()) for _ in range(3)]
        assert [(c.path, c.op) for c in received] == [
            ("ws", "create"),
            ("ws/one.txt", "create"),
            ("ws/one.txt", "delete"),
        ]
        assert received[1].origin == "client-a"
        assert received[1].metadata is not None and received[1].metadata.hash == sha(b"1")
        assert received[0].seq < received[1].seq < received[2].seq
    # a clean close when the server stops: a close frame with 1000 and a reason
    server.stop()
    for ws in sockets:
        opcode, payload = ws.frame()
        while opcode == 0x9:
            opcode, payload = ws.frame()
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1000
        assert b"shutting down" in payload
        ws.close()
