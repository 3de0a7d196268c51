"""The delta endpoints over real HTTP (real ``twistd``): a delta upload replaces a file
atomically and only when verified and its preconditions hold; bad chunks, missing
chunks and lying commits change nothing; the download side hands out the tree, nodes
and verified chunks; the access rules and body limits are those of the other endpoints."""

from __future__ import annotations

import http.client
import json
import random
from pathlib import Path
from typing import Any

import pytest

from caddytw.sync.chunks import Tree, build_tree, cut
from caddytw.sync.compression import compress
from caddytw.sync.delta import delta_name
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, Reply, folder_view, q, sha, sync_route

WRITER = "w" * 24
READER = "r" * 24
BASE = random.Random(3).randbytes(1024 * 1024)


@pytest.fixture(scope="module")
def served(tmp_path_factory: Any) -> Any:
    tmp_path = tmp_path_factory.mktemp("delta")
    port = free_port()
    root = tmp_path / "data"
    root.mkdir()
    clients = [
        {"id": "writer", "token": WRITER},
        {"id": "viewer", "token": READER, "read_only": True},
    ]
    config = simple_config(port, sync_route(root, enable_upload=True, clients=clients))
    with running_server(config, tmp_path, [port]) as srv:
        srv.root = root  # type: ignore[attr-defined]
        yield srv


def post(api: Api, endpoint: str, value: Any, **headers: str) -> Reply:
    body = json.dumps(value).encode()
    return api.call("POST", endpoint, body, {"Content-Type": "application/json", **headers})


def frames(data: bytes, tree: Tree, keys: set[str], corrupt: bool = False) -> bytes:
    out, offset = [], 0
    for key, length in tree.chunks:
        piece = data[offset : offset + length]
        offset += length
        if key in keys:
            if corrupt:
                piece = bytes([piece[0] ^ 1]) + piece[1:]
            out.append(bytes.fromhex(key) + length.to_bytes(4, "big") + piece)
            keys = keys - {key}
    return b"".join(out)


def plan(api: Api, path: str, data: bytes, tree: Tree, rounds: list[int] | None = None) -> set[str]:
    """Run the plan rounds; the chunks the server asks for (``rounds`` gets the number
    of nodes sent in each round)."""
    sending = [tree.nodes[tree.root]]
    missing: set[str] = set()
    while sending:
        if rounds is not None:
            rounds.append(len(sending))
        body = {
            "path": path,
            "size": len(data),
            "sha256": sha(data),
            "root": tree.root,
            "nodes": [n.to_json() for n in sending],
        }
        reply = post(api, "delta/plan", body)
        assert reply.status == 200, reply
        missing |= set(reply.json()["missing_chunks"])
        sending = [tree.nodes[h] for h in reply.json()["unknown_nodes"]]
    return missing


def commit(api: Api, path: str, data: bytes, tree: Tree, **headers: str) -> Reply:
    body = {"path": path, "size": len(data), "sha256": sha(data), "root": tree.root}
    return post(api, "delta/commit", body, **{k.replace("_", "-"): v for k, v in headers.items()})


def test_a_delta_upload_sends_only_new_chunks_and_commits_atomically(served: Any) -> None:
    api = Api(served.ports[0], WRITER)
    assert api.upload("base.bin", BASE).status == 201
    edited = BASE[:500_000] + b"new bytes" + BASE[500_000:]
    tree = build_tree(cut(edited))
    missing = plan(api, "base.bin", edited, tree)
    assert 0 < sum(n for k, n in set(tree.chunks) if k in missing) <= 3 * 32 * 1024
    # A damaged chunk is refused and not kept: the next plan still asks for it.
    assert api.call("POST", "delta/chunks", frames(edited, tree, missing, True)).status == 422
    assert plan(api, "base.bin", edited, tree) == missing
    # Committing before the chunks are there changes nothing.
    early = commit(api, "base.bin", edited, tree, If_Match=f'"{sha(BASE)}"')
    assert early.status == 409 and set(early.json()["missing_chunks"]) == missing
    assert (served.root / "base.bin").read_bytes() == BASE
    stored = api.call("POST", "delta/chunks", frames(edited, tree, missing))
    assert stored.status == 200 and set(stored.json()["stored"]) == missing
    assert plan(api, "base.bin", edited, tree) == set()
    # Stale precondition: 412, nothing written.
    stale = commit(api, "base.bin", edited, tree, If_Match=f'"{"0" * 64}"')
    assert stale.status == 412 and stale.json()["remote_metadata"]["hash"] == sha(BASE)
    assert commit(api, "base.bin", edited, tree, If_None_Match="*").status == 412
    assert (served.root / "base.bin").read_bytes() == BASE
    done = commit(api, "base.bin", edited, tree, If_Match=f'"{sha(BASE)}"')
    assert done.status == 200 and done.json()["hash"] == sha(edited)
    assert (served.root / "base.bin").read_bytes() == edited
    assert api.listing()["base.bin"]["hash"] == sha(edited)
    # The committed version's tree is the server's own now: the next edit costs a few
    # nodes on the way to one chunk, not the whole tree.
    again = edited[:100_000] + b"!" + edited[100_001:]
    rounds: list[int] = []
    plan(api, "base.bin", again, build_tree(cut(again)), rounds)
    assert sum(rounds) <= 2 * len(rounds), rounds
    # A copy under a new name needs no chunks at all.
    assert plan(api, "copy.bin", edited, tree) == set()
    assert commit(api, "copy.bin", edited, tree, If_None_Match="*").status == 201
    assert (served.root / "copy.bin").read_bytes() == edited
    api.close()


def test_a_commit_whose_hash_is_wrong_writes_nothing(served: Any) -> None:
    api = Api(served.ports[0], WRITER)
    data = random.Random(4).randbytes(400_000)
    tree = build_tree(cut(data))
    api.call("POST", "delta/chunks", frames(data, tree, plan(api, "lie.bin", data, tree)))
    before = folder_view(served.root)
    body = {"path": "lie.bin", "size": len(data), "sha256": sha(b"other"), "root": tree.root}
    reply = post(api, "delta/commit", body, **{"If-None-Match": "*"})
    assert reply.status == 422
    assert folder_view(served.root) == before  # no file, no temp file left behind
    api.close()


def test_the_download_side_serves_tree_nodes_and_verified_chunks(served: Any) -> None:
    api = Api(served.ports[0], READER)
    data = random.Random(6).randbytes(600_000)
    (served.root / "dl.bin").write_bytes(data)
    expected = build_tree(cut(data))
    for _ in range(100):
        reply = api.call("GET", f"chunks?path={q('dl.bin')}")
        if reply.status == 200:
            break
    assert reply.status == 200, reply
    info = reply.json()
    assert (info["sha256"], info["size"], info["root"]) == (sha(data), len(data), expected.root)
    below = [c for c, _ in expected.nodes[expected.root].children]
    nodes = post(api, "delta/nodes", {"hashes": below}).json()["nodes"]
    assert [n["hash"] for n in nodes] == below
    key, length = expected.chunks[5]
    got = api.call("GET", f"/api/chunk/{key}")
    assert got.status == 200 and len(got.body) == length and sha(got.body) == key
    assert api.call("GET", f"/api/chunk/{'0' * 64}").status == 404
    assert api.call("GET", "/api/chunk/nothex").status == 404
    assert api.call("GET", f"chunks?path={q('missing.bin')}").status == 404
    api.close()


def test_delta_endpoints_follow_the_access_rules(served: Any) -> None:
    reader = Api(served.ports[0], READER)
    tree = build_tree(cut(BASE))
    body = {"path": "x.bin", "size": len(BASE), "sha256": sha(BASE), "root": tree.root}
    assert post(reader, "delta/commit", body).status == 403
    assert post(reader, "delta/plan", {**body, "nodes": []}).status == 403
    anonymous = Api(served.ports[0])
    assert post(anonymous, "delta/plan", {**body, "nodes": []}).status == 401
    assert anonymous.call("GET", f"/api/chunk/{tree.chunks[0][0]}").status == 401
    assert post(Api(served.ports[0], WRITER), "delta/plan", {"path": "x"}).status == 400
    for api in (reader, anonymous):
        api.close()


def test_an_oversized_chunk_batch_is_refused_before_its_body(served: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.ports[0], timeout=15)
    conn.putrequest("POST", "/api/delta/chunks")
    for name, value in (
        ("Authorization", f"Bearer {WRITER}"),
        ("Content-Length", str(1 << 30)),
        ("Expect", "100-continue"),
        ("Content-Type", "application/octet-stream"),
    ):
        conn.putheader(name, value)
    conn.endheaders()  # no body sent at all: the answer must come anyway
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_nothing_is_staged_in_the_served_folder(served: Any) -> None:
    names = {p.name for p in Path(served.root).rglob("*")}
    assert not any(name.endswith(".tmp") or len(name) == 64 for name in names)


def test_routing_names_keep_the_seed_endpoints_under_any_prefix() -> None:
    known = {"list", "delta/plan", "chunk", "chunks"}
    assert delta_name("/api/delta/plan", known) == "delta/plan"
    assert delta_name(f"/api/chunk/{'a' * 64}", known) == "chunk"
    assert delta_name("/delta/list", known) == "list"  # a prefix that ends in "delta"
    assert delta_name("/chunk/list", known) == "list"
    assert delta_name("/api/list", known) == "list"


def test_chunk_batches_may_travel_as_zstd(served: Any) -> None:
    api = Api(served.ports[0], WRITER)
    text = b"".join(b"line %d of a log that compresses well\n" % i for i in range(20_000))
    tree = build_tree(cut(text))
    body = compress(frames(text, tree, plan(api, "log.txt", text, tree)))
    zstd = {"Content-Encoding": "zstd"}
    assert len(body) < len(text) // 3
    assert api.call("POST", "delta/chunks", body, zstd).status == 200
    assert plan(api, "log.txt", text, tree) == set()
    assert api.call("POST", "delta/chunks", b"not zstd", zstd).status == 400
    assert api.call("POST", "delta/chunks", b"x", {"Content-Encoding": "br"}).status == 415
    api.close()
