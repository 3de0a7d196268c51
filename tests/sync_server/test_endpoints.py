"""Every sync endpoint against a real ``twistd caddy`` process on loopback."""

from __future__ import annotations

import json

import pytest

from caddytw.sync.protocol import ChangesPage, ConflictInfo, FileMetadata, SyncResponse
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import (
    Api,
    folder_view,
    listing_view,
    q,
    sha,
    sync_route,
    wait_until_open,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sync-endpoints")
    port = free_port()
    root = workdir / "data"
    config = simple_config(port, sync_route(root, enable_upload=True))
    with running_server(config, workdir, [port]) as srv:
        wait_until_open(port)
        srv.root = root
        yield srv


@pytest.fixture
def api(server):
    client = Api(server.ports[0])
    yield client
    client.close()


def test_upload_download_metadata_list(api, server):
    data = b"hello world\n"
    reply = api.upload("docs/hello.txt", data, **{"X-Content-SHA256": sha(data)})
    assert reply.status == 201, reply
    meta = FileMetadata.from_json(reply.json())
    assert (meta.path, meta.size, meta.hash) == ("docs/hello.txt", len(data), sha(data))
    assert reply.headers["etag"] == f'"{sha(data)}"'

    listing = api.listing()
    assert listing["docs/hello.txt"]["hash"] == sha(data)
    assert listing["docs"]["is_directory"] is True

    got = api.download("docs/hello.txt")
    assert (got.status, got.body) == (200, data)
    assert got.headers["etag"] == f'"{sha(data)}"'
    assert got.headers["content-type"] == "application/octet-stream"

    meta_reply = api.call("GET", "metadata?path=docs/hello.txt")
    assert FileMetadata.from_json(meta_reply.json()) == FileMetadata.from_json(reply.json())
    assert (server.root / "docs/hello.txt").read_bytes() == data

    assert api.call("GET", "metadata?path=nope").status == 404
    assert api.download("nope").status == 404
    assert api.call("HEAD", "download?path=docs/hello.txt").status == 200


def test_same_content_is_never_a_conflict(api):
    data = b"same"
    assert api.upload("same.txt", data).status == 201
    again = api.upload("same.txt", data, If_None_Match="*")
    assert again.status == 200, again
    assert api.upload("same.txt", data, If_Match=f'"{"0" * 64}"').status == 200


def test_preconditions(api, server):
    first, second = b"version 1", b"version 2"
    assert api.upload("p.txt", first, If_None_Match="*").status == 201
    clash = api.upload("p.txt", second, If_None_Match="*")
    assert clash.status == 412
    info = ConflictInfo.from_json(clash.json())
    assert info.remote_metadata is not None and info.remote_metadata.hash == sha(first)
    assert clash.headers["etag"] == f'"{sha(first)}"'

    stale = api.upload("p.txt", second, If_Match=f'"{sha(b"older")}"')
    assert stale.status == 412
    assert (server.root / "p.txt").read_bytes() == first  # never overwritten

    ok = api.upload("p.txt", second, If_Match=f'"{sha(first)}"')
    assert ok.status == 200, ok
    assert (server.root / "p.txt").read_bytes() == second
    assert api.upload("p.txt", b"x", If_Match="not-an-etag").status == 400
    assert api.upload("new-only.txt", b"x", If_Match="*").status == 412


def test_hash_mismatch_leaves_no_trace(api, server):
    before = folder_view(server.root)
    bad = api.upload("bad.txt", b"payload", **{"X-Content-SHA256": sha(b"other")})
    assert bad.status == 422, bad
    assert "SHA-256" in bad.json()["error"]
    assert api.upload("bad.txt", b"x", **{"X-Content-SHA256": "xyz"}).status == 400
    assert folder_view(server.root) == before
    assert "bad.txt" not in api.listing()


def test_download_ranges(api):
    data = bytes(range(256)) * 40
    api.upload("r.bin", data)
    etag = f'"{sha(data)}"'
    part = api.download("r.bin", Range="bytes=100-199")
    assert part.status == 206 and part.body == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert api.download("r.bin", Range="bytes=-10").body == data[-10:]
    assert api.download("r.bin", Range="bytes=10000-").body == data[10000:]
    resumed = api.download("r.bin", Range="bytes=5-", If_Range=etag)
    assert resumed.status == 206 and resumed.body == data[5:]
    changed = api.download("r.bin", Range="bytes=5-", If_Range=f'"{"0" * 64}"')
    assert changed.status == 200 and changed.body == data
    unsatisfiable = api.download("r.bin", Range=f"bytes={len(data)}-")
    assert unsatisfiable.status == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    assert api.download("r.bin", If_None_Match=etag).status == 304


def test_changes_since_with_tombstones_and_paging(api):
    page = ChangesPage.from_json(api.call("GET", "list?since=0").json())
    start = page.cursor
    for name in ("c1", "c2", "c3"):
        api.upload(f"changes/{name}", name.encode())
    api.call("DELETE", "file?path=changes/c2")
    first = ChangesPage.from_json(
        api.call("GET", f"list?since={start}&limit=2&index_id={page.index_id}").json()
    )
    assert first.more and len(first.changes) == 2
    rest = ChangesPage.from_json(api.call("GET", f"list?since={first.cursor}").json())
    assert not rest.more
    seen = {c.path: c for c in first.changes + rest.changes}
    assert seen["changes/c2"].op == "delete" and seen["changes/c2"].metadata is None
    assert seen["changes/c1"].op == "create"
    assert [c.seq for c in first.changes + rest.changes] == sorted(
        c.seq for c in first.changes + rest.changes
    )
    other = ChangesPage.from_json(api.call("GET", "list?since=1&index_id=someotherindex").json())
    assert other.reset and other.changes == ()
    assert api.call("GET", "list?since=abc").status == 400


def test_sync_operations(api, server):
    api.upload("s/a.txt", b"a")
    api.upload("s/b.txt", b"b")
    meta_new = {
        "path": "s/new.txt",
        "size": 3,
        "modified": "2024-01-01T12:00:00Z",
        "hash": sha(b"new"),
        "is_directory": False,
    }
    meta_b = dict(meta_new, path="s/b.txt", hash=sha(b"b2"))
    reply = api.sync(
        [
            {"Create": {"metadata": meta_new}},
            {"Move": {"from": "s/a.txt", "to": "s/moved/a.txt"}},
            {"Delete": {"path": "s/b.txt", "base_hash": sha(b"stale")}},
            {"Update": {"metadata": meta_b, "base_hash": sha(b"stale")}},
            {
                "Create": {
                    "metadata": dict(meta_new, path="s/empty", size=0, hash="", is_directory=True)
                }
            },
            {"Delete": {"path": "s/gone"}},
        ]
    )
    assert reply.status == 200, reply
    response = SyncResponse.from_json(reply.json())
    statuses = [r.status for r in response.results]
    assert statuses == [
        "upload_required",
        "applied",
        "conflict",
        "conflict",
        "applied",
        "unchanged",
    ]
    assert [c.path for c in response.conflicts] == ["s/b.txt", "s/b.txt"]
    assert (server.root / "s/moved/a.txt").read_bytes() == b"a"
    assert not (server.root / "s/a.txt").exists()
    assert (server.root / "s/b.txt").read_bytes() == b"b"
    assert (server.root / "s/empty").is_dir()
    # the client's catch-up excludes its own changes but includes others'
    assert response.cursor is not None
    other = SyncResponse.from_json(api.sync([], client_id="someone-else").json())
    assert any(getattr(op, "from_path", None) is None for op in other.operations)

    bad = api.sync([{"Delete": {"path": "../x"}}])
    assert bad.status == 400 and "operations[0].Delete.path" in bad.json()["error"]
    assert api.call("POST", "sync", b"{not json").status == 400


def test_delete_endpoint_preconditions(api, server):
    api.upload("d.txt", b"d")
    assert (
        api.call("DELETE", "file?path=d.txt", headers={"If-Match": f'"{sha(b"x")}"'}).status == 412
    )
    assert (server.root / "d.txt").exists()
    ok = api.call("DELETE", "file?path=d.txt", headers={"If-Match": f'"{sha(b"d")}"'})
    assert ok.status == 200 and ok.json()["op"] == "delete"
    assert api.call("DELETE", "file?path=d.txt").status == 404


def test_protocol_errors(api):
    assert api.call("GET", "frobnicate").status == 404
    wrong = api.call("GET", "upload?path=x")
    assert wrong.status == 405 and "POST" in wrong.headers["allow"]
    assert api.call("GET", "download").status == 400
    assert api.call("GET", "events").status == 426
    assert json.loads(api.call("GET", "download").body)["error"]


def test_plus_and_unicode_paths(api, server):
    for path in ("a+b c.txt", "ünï/cødé ✓.txt", "%41.txt"):
        assert api.upload(path, path.encode()).status == 201, path
        assert api.download(path).body == path.encode()
        assert (server.root / path).read_bytes() == path.encode()


def test_other_programs_changes_are_picked_up(api, server):
    import time

    (server.root / "outside").mkdir()
    (server.root / "outside" / "made.txt").write_bytes(b"by another program")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listing = api.listing()
        if "outside/made.txt" in listing:
            break
        time.sleep(0.1)
    assert listing["outside/made.txt"]["hash"] == sha(b"by another program")
    # downloads always serve what is on disk with the matching hash
    (server.root / "outside" / "made.txt").write_bytes(b"edited again")
    got = api.download("outside/made.txt")
    assert got.body == b"edited again" and got.headers["etag"] == f'"{sha(b"edited again")}"'


def test_index_matches_folder(api, server):
    assert listing_view(api.listing()) == folder_view(server.root)


def test_prefix_independence(tmp_path):
    port = free_port()
    routes = [
        {
            "match": [{"path": ["/sync/v1/*"]}],
            "handle": [
                {
                    "handler": "file_sync",
                    "root": str(tmp_path / "d"),
                    "create_root": True,
                    "enable_upload": False,
                }
            ],
        }
    ]
    with running_server(simple_config(port, routes), tmp_path, [port]):
        api = Api(port, prefix="/sync/v1")
        assert api.call("GET", "list").json() == []
        assert api.upload("x", b"x").status == 403
        assert api.call("DELETE", f"file?path={q('x')}").status == 403
        assert api.sync([{"Delete": {"path": "x"}}]).status == 403
        assert api.sync([]).status == 200
        assert api.call("GET", "whoami").json() == {
            "client_id": None,
            "read_only": False,
            "upload_enabled": False,
            "can_write": False,
        }
        api.close()


def test_case_and_normalisation_clashes_are_refused(api, server):
    """Two names one file on macOS/Windows: the second is refused with 409, the body a
    ConflictInfo naming the path that is already there; nothing reaches the disk."""
    assert api.upload("clash/Readme.md", b"first").status == 201
    for other in ("clash/README.md", "clash/readme.md", "CLASH/new.txt"):
        reply = api.upload(other, b"second", **{"X-Content-SHA256": sha(b"second")})
        assert reply.status == 409, (other, reply)
        body = reply.json()
        assert body["existing_path"] in ("clash/Readme.md", "clash")
        assert body["remote_metadata"]["path"] == body["existing_path"]
        assert body["path"] == other
        assert "case" in body["error"]
        ConflictInfo.from_json(body)  # the ConflictInfo shape, extra fields allowed
    assert sorted(p for p in api.listing() if p.lower().startswith("clash")) == [
        "clash",
        "clash/Readme.md",
    ]
    assert sorted(p.name for p in (server.root / "clash").iterdir()) == ["Readme.md"]
    assert not (server.root / "CLASH").exists()

    # NFC "é" (one code point) vs NFD "e" + combining accent
    assert api.upload("clash/caf\u00e9.txt", b"nfc").status == 201
    reply = api.upload("clash/cafe\u0301.txt", b"nfd")
    assert (reply.status, reply.json()["existing_path"]) == (409, "clash/caf\u00e9.txt")

    # the same through /api/sync (a conflict result) and a folder create
    meta = {
        "path": "clash/readme.MD",
        "size": 1,
        "modified": "2024-01-01T12:00:00Z",
        "hash": sha(b"x"),
        "is_directory": False,
    }
    folder = dict(meta, path="Clash", size=0, hash="", is_directory=True)
    response = SyncResponse.from_json(
        api.sync([{"Create": {"metadata": meta}}, {"Create": {"metadata": folder}}]).json()
    )
    assert [r.status for r in response.results] == ["conflict", "conflict"]
    assert [c.remote_metadata.path for c in response.conflicts] == ["clash/Readme.md", "clash"]

    # a case-only rename of the existing path itself goes through
    moved = api.sync([{"Move": {"from": "clash/Readme.md", "to": "clash/README.md"}}])
    assert [r["status"] for r in moved.json()["results"]] == ["applied"]
    assert (server.root / "clash/README.md").read_bytes() == b"first"
    # and a new name that differs only by case from the renamed file is still refused
    assert api.upload("clash/Readme.md", b"again").status == 409
    # once the first is deleted, the other spelling is free
    assert api.call("DELETE", "file?path=clash/README.md").status == 200
    assert api.upload("clash/readme.md", b"now fine").status == 201
