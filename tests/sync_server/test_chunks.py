"""Content-defined chunks and the hash tree, in memory: edits stay local, the tree
exchange finds exactly the missing chunks, and nodes verify."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.sync.chunks import (
    MAX_CHUNK,
    ChunkCache,
    Node,
    Tree,
    TreeError,
    build_tree,
    cut,
    diff_round,
    expand,
)
from caddytw.sync.localfs import StatKey

BASE = random.Random(7).randbytes(3 * 1024 * 1024)


def exchange(new: Tree, receiver: Tree) -> tuple[set[str], int]:
    """Simulate the upload rounds: the chunks the receiver asks for and the number of
    node entries sent."""
    known = dict(receiver.nodes)
    chunks = {k for k, _ in receiver.chunks}
    sending = [new.nodes[new.root]]
    missing: set[str] = set()
    sent = 0
    while sending:
        sent += len(sending)
        known.update((n.hash, n) for n in sending)
        unknown, lacking = diff_round(
            sending, lambda key: key in known, lambda keys: {k for k in keys if k in chunks}
        )
        missing.update(lacking)
        sending = [new.nodes[h] for h in unknown]
    # The receiver can now rebuild the new file's chunk list from what it knows.
    assert expand(new.root, known.get) == list(new.chunks)
    return missing, sent


def test_chunks_cover_the_data_within_bounds() -> None:
    refs = cut(BASE)
    assert sum(n for _, n in refs) == len(BASE)
    assert all(n <= MAX_CHUNK for _, n in refs)
    assert expand(build_tree(refs).root, build_tree(refs).nodes.get) == refs


@settings(max_examples=25, deadline=None)
@given(
    offset=st.integers(0, len(BASE) - 1),
    insert=st.binary(min_size=0, max_size=2048),
    remove=st.integers(0, 2048),
)
def test_an_edit_costs_a_few_chunks_and_a_few_nodes(
    offset: int, insert: bytes, remove: int
) -> None:
    edited = BASE[:offset] + insert + BASE[offset + remove :]
    old, new = build_tree(cut(BASE)), build_tree(cut(edited))
    missing, sent = exchange(new, old)
    assert missing == {k for k, _ in new.chunks} - {k for k, _ in old.chunks}
    # An edit of up to 2 KiB touches at most a few chunks and the nodes above them.
    assert sum(n for k, n in set(new.chunks) if k in missing) <= 4 * MAX_CHUNK + len(insert)
    assert sent <= 4 * 8


def test_a_renamed_file_costs_nothing_and_unrelated_data_everything() -> None:
    tree = build_tree(cut(BASE))
    assert exchange(tree, tree) == (set(), 1)
    other = build_tree(cut(random.Random(8).randbytes(len(BASE))))
    missing, _ = exchange(other, tree)
    assert missing == {k for k, _ in other.chunks}


def test_nodes_verify_against_their_hash() -> None:
    tree = build_tree(cut(BASE))
    node = tree.nodes[tree.root]
    assert Node.from_json(node.to_json()) == node
    forged = node.to_json()
    forged["children"][0][1] += 1
    with pytest.raises(TreeError):
        Node.from_json(forged)
    bad: object
    for bad in ({"height": 0}, [], {"hash": "x", "height": 1, "children": [["a", 1]]}):
        with pytest.raises(TreeError):
            Node.from_json(bad)


def test_cache_is_keyed_by_stat_and_locates_chunks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.bin").write_bytes(BASE)
    cache = ChunkCache(tmp_path / "chunks.db")
    tree, whole, stat = cache.tree_of(root, "a.bin")
    assert cache.file("a.bin", stat) == (whole, tree.root)
    assert cache.file("a.bin", StatKey(stat.size, stat.mtime_ns + 1, stat.inode)) is None
    key, _length = tree.chunks[3]
    assert cache.read_chunk(root, key) is not None
    assert cache.has_chunks([key, "0" * 64]) == {key}
    # A location whose bytes changed is not trusted.
    (root / "a.bin").write_bytes(bytes(len(BASE)))
    assert cache.read_chunk(root, key) is None
    again, _whole, _stat = cache.tree_of(root, "a.bin")
    assert again.root != tree.root
    cache.close()
