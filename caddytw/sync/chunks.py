"""Content-defined chunks, the hash tree over them, and the per-file chunk cache: the
pieces both the server (:mod:`caddytw.sync.delta`) and the client
(:mod:`synclient.delta`) use for delta transfers.

A file is cut with FastCDC (``pyfastcdc``: Cython, streams a file object, so one pass
cuts and hashes), average 8 KiB, between 2 KiB and 32 KiB: an edit changes one or two
chunks, and a 1-byte edit of 64 MiB costs one chunk plus a few kB of hashes.

The chunks' SHA-256s are the leaves of a tree whose nodes are themselves cut by content
(a child closes its node when its hash ends in a 0 nibble and the node has at least two
children; at most :data:`MAX_FANOUT`): an insert changes only the nodes on its way to the
root, not every node after it as fixed-size groups would. Two sides find their
difference by expanding only the nodes the other lacks, from the root down: a few dozen
hashes for a one-chunk change, not a list of thousands.

:class:`ChunkCache` remembers each file's cut per (path, size, mtime_ns, inode), every
node it has seen, and where each chunk lives (path, offset, length), so an unchanged
file is never re-chunked and any file's chunks can be reused. Locations are hints: the
bytes read from one are verified against the chunk hash before use.

Everything here blocks (file reads, SQLite): call it from threads, never the reactor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyfastcdc

from caddytw.sync.localfs import StatKey, open_regular

MIN_CHUNK = 2 * 1024
AVG_CHUNK = 8 * 1024
MAX_CHUNK = 32 * 1024
#: Files smaller than this keep the whole-file path (a delta saves little on them).
#: ``CADDYTW_SYNC_DELTA_MIN`` (bytes) overrides it on both sides, so the adversarial
#: model test can run its small files through the delta path.
DELTA_MIN_SIZE = int(os.environ.get("CADDYTW_SYNC_DELTA_MIN", 256 * 1024))
MAX_FANOUT = 64
MAX_HEIGHT = 16

#: A chunk or node as its parent lists it: (SHA-256 hex, bytes it covers).
Ref = tuple[str, int]


class TreeError(ValueError):
    """A node or tree that does not verify (wrong hash, bad shape)."""


class FileChanged(OSError):
    """The file changed while it was being chunked."""


def _cutter() -> Any:
    return pyfastcdc.FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def cut(data: bytes) -> list[Ref]:
    """The chunks of an in-memory buffer (tests, small payloads)."""
    return [(hashlib.sha256(c.data).hexdigest(), c.length) for c in _cutter().cut_buf(bytes(data))]


@dataclass(frozen=True, slots=True)
class Node:
    """A tree node: its height (1 = its children are chunks) and children."""

    height: int
    children: tuple[Ref, ...]

    @property
    def hash(self) -> str:
        return node_hash(self.height, self.children)

    @property
    def length(self) -> int:
        return sum(length for _, length in self.children)

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "height": self.height,
            "children": [list(c) for c in self.children],
        }

    @classmethod
    def from_json(cls, data: Any) -> Node:
        """A node sent by the other side, checked against the hash it claims."""
        if not isinstance(data, dict):
            raise TreeError("a node is a JSON object")
        height, children, claimed = data.get("height"), data.get("children"), data.get("hash")
        if not isinstance(height, int) or not 1 <= height <= MAX_HEIGHT:
            raise TreeError(f"node height must be 1..{MAX_HEIGHT}")
        if not isinstance(children, list) or not 1 <= len(children) <= MAX_FANOUT:
            raise TreeError(f"a node has 1..{MAX_FANOUT} children")
        refs = tuple(parse_ref(child) for child in children)
        if height == 1 and any(length > MAX_CHUNK for _, length in refs):
            raise TreeError(f"chunks are at most {MAX_CHUNK} bytes")
        node = cls(height, refs)
        if node.hash != claimed:
            raise TreeError(f"node {str(claimed)[:16]}... does not match its children")
        return node


def parse_ref(value: Any) -> Ref:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not is_hash(value[0])
        or not isinstance(value[1], int)
        or isinstance(value[1], bool)
        or not 0 < value[1] < 1 << 62
    ):
        raise TreeError("a child is [sha256 hex, positive length]")
    return value[0], value[1]


def is_hash(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def node_hash(height: int, children: Iterable[Ref]) -> str:
    digest = hashlib.sha256(bytes([height]))
    for child, length in children:
        digest.update(bytes.fromhex(child) + length.to_bytes(8, "big"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Tree:
    """A file's chunks and the nodes above them (``root`` is the top node's hash)."""

    chunks: tuple[Ref, ...]
    nodes: dict[str, Node]
    root: str

    @property
    def size(self) -> int:
        return sum(length for _, length in self.chunks)


def _closes(child: str, count: int) -> bool:
    return count >= MAX_FANOUT or (count >= 2 and child[-1] == "0")


def build_tree(chunks: Iterable[Ref]) -> Tree:
    """The tree over ``chunks`` (an empty file has one empty-looking node of no chunks:
    not used, files that small never take the delta path)."""
    leaves = tuple(chunks)
    nodes: dict[str, Node] = {}
    level: list[Ref] = list(leaves)
    height = 0
    while height == 0 or len(level) > 1:
        height += 1
        grouped: list[Ref] = []
        current: list[Ref] = []
        for ref in level:
            current.append(ref)
            if _closes(ref[0], len(current)):
                grouped.append(_add(nodes, height, current))
                current = []
        if current or not grouped:
            grouped.append(_add(nodes, height, current))
        level = grouped
    return Tree(leaves, nodes, level[0][0])


def _add(nodes: dict[str, Node], height: int, children: list[Ref]) -> Ref:
    node = Node(height, tuple(children))
    key = node.hash
    nodes[key] = node
    return key, node.length


def expand(root: str, lookup: Any) -> list[Ref]:
    """The chunk list under ``root``; ``lookup(hash) -> Node | None`` (a missing node
    raises :class:`TreeError`)."""
    out: list[Ref] = []
    stack: list[tuple[str, int]] = [(root, MAX_HEIGHT + 1)]
    while stack:
        key, parent_height = stack.pop()
        node = lookup(key)
        if node is None:
            raise TreeError(f"node {key[:16]}... is unknown")
        if node.height >= parent_height:
            raise TreeError("node heights must decrease towards the chunks")
        if node.height == 1:
            out.extend(node.children)
        else:
            stack.extend((child, node.height) for child, _ in reversed(node.children))
    return out


def diff_round(
    nodes: Iterable[Node],
    knows_node: Callable[[str], bool],
    has_chunks: Callable[[list[str]], set[str]],
) -> tuple[list[str], list[str]]:
    """One round of finding what the receiving side lacks: of the children of the
    ``nodes`` the sender just sent, the nodes it should send next (unknown to the
    receiver) and the chunks it must upload (the receiver cannot produce them)."""
    unknown: list[str] = []
    leaves: list[str] = []
    for node in nodes:
        for child, _length in node.children:
            if node.height == 1:
                leaves.append(child)
            elif not knows_node(child):
                unknown.append(child)
    have = has_chunks(leaves)
    missing = [k for k in leaves if k not in have]
    return list(dict.fromkeys(unknown)), list(dict.fromkeys(missing))


def chunk_stream(source: Any) -> tuple[list[Ref], str]:
    """Cut and hash a binary stream in one pass: its chunks and whole SHA-256."""
    whole = hashlib.sha256()
    refs: list[Ref] = []
    for piece in _cutter().cut_stream(source):
        whole.update(piece.data)
        refs.append((hashlib.sha256(piece.data).hexdigest(), piece.length))
    return refs, whole.hexdigest()


def chunk_file(path: Path | str) -> tuple[list[Ref], str, StatKey]:
    """Chunk a regular file (never through a link); :class:`FileChanged` when its stat
    moved while it was read (another program writing it)."""
    fd, before = open_regular(path)
    with os.fdopen(fd, "rb") as source:
        refs, whole = chunk_stream(source)
        after = os.fstat(source.fileno())
    if StatKey.of(before) != StatKey.of(after) or sum(n for _, n in refs) != after.st_size:
        raise FileChanged(f"{path} changed while it was chunked")
    return refs, whole, StatKey.of(after)


def read_verified(path: Path, offset: int, length: int, expected: str) -> bytes | None:
    """``length`` bytes of ``path`` at ``offset`` if they hash to ``expected``, else
    ``None`` (moved, changed, gone, a link)."""
    try:
        fd, _info = open_regular(path)
    except OSError:
        return None
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length or hashlib.sha256(data).hexdigest() != expected:
        return None
    return data


_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, sha256 TEXT NOT NULL, root TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    hash TEXT NOT NULL, path TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks (hash);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks (path);
CREATE TABLE IF NOT EXISTS nodes (
    hash TEXT PRIMARY KEY, height INTEGER NOT NULL, children TEXT NOT NULL,
    in_file INTEGER NOT NULL
);
"""


class ChunkCache:
    """Per-file cuts, tree nodes and chunk locations in a SQLite file of their own.

    It is a cache: losing it costs a re-chunk, never data (every location is verified
    when read), so ``synchronous=NORMAL``. One connection behind a lock, usable from any
    thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def file(self, path: str, stat: StatKey) -> tuple[str, str] | None:
        """(sha256, root) of ``path`` when it was chunked with exactly this stat."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, inode, sha256, root FROM files WHERE path = ?", (path,)
            ).fetchone()
        if row is None or StatKey(row[0], row[1], row[2]) != stat:
            return None
        return row[3], row[4]

    def record(self, path: str, stat: StatKey, sha256: str, tree: Tree) -> None:
        """Remember ``path``'s cut (replacing what was known about that path)."""
        with self._tx() as db:
            db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (path, stat.size, stat.mtime_ns, stat.inode, sha256, tree.root),
            )
            rows, offset = [], 0
            for key, length in tree.chunks:
                rows.append((key, path, offset, length))
                offset += length
            db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)", rows)
            self._put_nodes(db, tree.nodes.values(), in_file=True)

    def forget(self, path: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            db.execute("DELETE FROM files WHERE path = ?", (path,))

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        """Keep nodes an upload sent (for its commit); they vouch for no chunks."""
        with self._tx() as db:
            self._put_nodes(db, nodes, in_file=False)

    @staticmethod
    def _put_nodes(db: sqlite3.Connection, nodes: Iterable[Node], in_file: bool) -> None:
        rows = [
            (n.hash, n.height, json.dumps(n.children, separators=(",", ":")), int(in_file))
            for n in nodes
        ]
        if in_file:
            db.executemany(
                "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, 1)", [r[:3] for r in rows]
            )
        else:
            db.executemany("INSERT OR IGNORE INTO nodes VALUES (?, ?, ?, 0)", [r[:3] for r in rows])

    def node(self, key: str, in_file: bool = False) -> Node | None:
        """A node by hash; with ``in_file``, only one that is part of a chunked file
        (whose chunks were then on disk), not one an upload merely sent."""
        query = "SELECT height, children FROM nodes WHERE hash = ?"
        if in_file:
            query += " AND in_file = 1"
        with self._lock:
            row = self._db.execute(query, (key,)).fetchone()
        if row is None:
            return None
        return Node(row[0], tuple((c, n) for c, n in json.loads(row[1])))

    def locations(self, key: str, limit: int = 4) -> list[tuple[str, int, int]]:
        """Where chunk ``key`` was last seen: (path, offset, length), unverified."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT path, offset, length FROM chunks WHERE hash = ? LIMIT ?", (key, limit)
                )
            )

    def knows_chunks(self) -> bool:
        """Whether any chunk has a known location (an empty cache can build nothing)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None

    def has_chunks(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` have at least one known location."""
        found: set[str] = set()
        wanted = list(keys)
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                found.update(
                    row[0]
                    for row in self._db.execute(
                        f"SELECT DISTINCT hash FROM chunks WHERE hash IN ({marks})", part
                    )
                )
        return found

    def read_chunk(self, root: Path, key: str) -> bytes | None:
        """The bytes of chunk ``key`` from any file under ``root`` that still holds
        them (verified), or ``None``."""
        for path, offset, length in self.locations(key):
            data = read_verified(root / path, offset, length, key)
            if data is not None:
                return data
        return None

    def tree_of(self, root: Path, path: str) -> tuple[Tree, str, StatKey]:
        """``path``'s tree, whole SHA-256 and stat: from the cache when its stat still
        matches, else chunked now (and remembered)."""
        full = root / path
        fd, info = open_regular(full)
        os.close(fd)
        stat = StatKey.of(info)
        known = self.file(path, stat)
        if known is not None:
            tree = self.load_tree(known[1])
            if tree is not None:
                return tree, known[0], stat
        refs, whole, stat = chunk_file(full)
        tree = build_tree(refs)
        self.record(path, stat, whole, tree)
        return tree, whole, stat

    def load_tree(self, root_hash: str) -> Tree | None:
        nodes: dict[str, Node] = {}

        def lookup(key: str) -> Node | None:
            node = self.node(key)
            if node is not None:
                nodes[key] = node
            return node

        try:
            chunks = expand(root_hash, lookup)
        except TreeError:
            return None
        return Tree(tuple(chunks), nodes, root_hash)
