"""A folder proves it is the same folder (issue 12, finding 2): an unmounted disk, an
empty mount point or a lost index stop the server with a 503 instead of looking like
"everything was deleted"; the index lives outside the served tree. Real ``twistd``."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from caddytw.sync.index import SyncIndex
from caddytw.sync.protocol import FOLDER_MARKER, INDEX_DIR_NAME
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, sync_route


def start(tmp_path: Path, root: Path, **fields):
    port = free_port()
    config = simple_config(port, sync_route(root, enable_upload=True, **fields))
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    return running_server(config, tmp_path, [port], env=env), port


def index_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "xdg").rglob("index.db"))


def wait_status(api: Api, status: int, timeout: float = 20.0, says: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = api.call("GET", "list")
        if reply.status == status and says in reply.body.decode():
            return
        time.sleep(0.2)
    raise AssertionError(f"never answered {status} {says}")


def fill(tmp_path: Path, root: Path) -> tuple[str, int]:
    """Serve ``root`` once, upload three files; return the index id and cursor."""
    server, port = start(tmp_path, root)
    with server:
        api = Api(port)
        for name in ("a.txt", "b/c.txt", "d.txt"):
            assert api.upload(name, name.encode()).status == 201
        page = api.call("GET", "list?since=0").json()
        api.close()
    return page["index_id"], page["cursor"]


def test_an_unmounted_folder_is_refused_not_recreated(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    index_id, cursor = fill(tmp_path, root)
    assert json.loads((root / FOLDER_MARKER).read_text())["index_id"] == index_id
    root.rename(tmp_path / "unmounted")
    server, port = start(tmp_path, root, create_root=False)
    with server as srv:
        api = Api(port)
        wait_status(api, 503, says="does not exist")
        for target in ("list", "list?since=0", "metadata?path=a.txt", "download?path=a.txt"):
            reply = api.call("GET", target)
            assert reply.status == 503, (target, reply)
            assert "does not exist" in reply.json()["error"]
        assert api.upload("new.txt", b"x").status == 503
        assert not root.exists()
        assert srv.log().count("not serving") == 1
        # the disk comes back: served again, same index, no deletions
        (tmp_path / "unmounted").rename(root)
        wait_status(api, 200)
        again = api.call("GET", f"list?since={cursor}&index_id={index_id}").json()
        assert again["reset"] is False and again["changes"] == []
        api.close()


def test_an_empty_mount_point_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    index_id, cursor = fill(tmp_path, root)
    root.rename(tmp_path / "unmounted")
    root.mkdir()  # the mount point, without the disk
    server, port = start(tmp_path, root)
    with server:
        api = Api(port)
        wait_status(api, 503, says="empty mount point")
        assert list(root.iterdir()) == []  # no marker written into the mount point
        root.rmdir()
        (tmp_path / "unmounted").rename(root)
        wait_status(api, 200)
        again = api.call("GET", f"list?since={cursor}&index_id={index_id}").json()
        assert again["reset"] is False and again["changes"] == []
        api.close()


def test_a_folder_that_vanishes_while_served_records_no_deletes(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    server, port = start(tmp_path, root, rescan_interval="1s")
    with server:
        api = Api(port)
        for name in ("a.txt", "b/c.txt"):
            assert api.upload(name, name.encode()).status == 201
        page = api.call("GET", "list?since=0").json()
        root.rename(tmp_path / "away")
        wait_status(api, 503)
        time.sleep(1.5)  # a periodic rescan ran meanwhile
        (tmp_path / "away").rename(root)
        wait_status(api, 200)
        again = api.call("GET", f"list?since={page['cursor']}&index_id={page['index_id']}")
        assert again.json()["changes"] == [], again
        api.close()


def test_a_lost_index_is_refused_until_the_marker_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    index_id, _ = fill(tmp_path, root)
    for path in index_files(tmp_path):
        path.unlink()
    server, port = start(tmp_path, root)
    with server:
        api = Api(port)
        wait_status(api, 503, says=index_id)
        (root / FOLDER_MARKER).unlink()
        wait_status(api, 200)
        fresh = api.call("GET", "list")
        assert fresh.headers["x-sync-index-id"] != index_id
        assert {item["path"] for item in fresh.json()} == {"a.txt", "b", "b/c.txt", "d.txt"}
        api.close()


def test_create_root_makes_a_new_folder_with_its_marker(tmp_path: Path) -> None:
    root = tmp_path / "new" / "folder"
    server, port = start(tmp_path, root, create_root=True)
    with server:
        api = Api(port)
        reply = api.call("GET", "list")
        assert reply.status == 200 and reply.json() == []
        marker = json.loads((root / FOLDER_MARKER).read_text())
        assert marker["index_id"] == reply.headers["x-sync-index-id"]
        api.close()


def test_legacy_index_moves_out_of_the_folder(tmp_path: Path) -> None:
    """An index in ``<root>/.caddytw-sync`` (before this change) keeps its id and
    journal, moves to the data dir, and nothing of ours stays in the tree but the
    marker; a file_server on the same root cannot hand the index out."""
    root = tmp_path / "disk"
    (root / INDEX_DIR_NAME).mkdir(parents=True)
    (root / "kept.txt").write_bytes(b"kept")
    legacy = SyncIndex(root / INDEX_DIR_NAME / "index.db")
    with legacy.transaction():
        legacy.record("kept.txt", False, 4, 0, 0, "0" * 64, None)
    legacy_id, legacy_seq = legacy.index_id, legacy.seq
    legacy.close()
    port = free_port()
    routes = [
        *sync_route(root, enable_upload=True, create_root=False),
        {"handle": [{"handler": "file_server", "root": str(root)}]},
    ]
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    with running_server(simple_config(port, routes), tmp_path, [port], env=env) as srv:
        api = Api(port)
        page = api.call("GET", f"list?since={legacy_seq}&index_id={legacy_id}").json()
        assert page["reset"] is False and page["index_id"] == legacy_id
        assert sorted(p.name for p in root.iterdir()) == [FOLDER_MARKER, "kept.txt"]
        assert api.call("GET", f"/{INDEX_DIR_NAME}/index.db").status == 404
        assert "moved the index" in srv.log()
        api.close()
    (moved,) = index_files(tmp_path)
    db = sqlite3.connect(moved)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
