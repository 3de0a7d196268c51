"""Delta transfers on the client: upload only the chunks the server lacks, download only
the chunks this folder lacks (from any local file that still holds them).

Protocol and shapes: :mod:`caddytw.sync.protocol` ("Delta transfers"); chunking and the
tree: :mod:`caddytw.sync.chunks`. The chunk cache is ``.synclient/chunks.db`` beside the
state database (a file of its own: the state holds one write transaction open for a
whole pass, which a second writer would wait on). Everything that reads files, hashes or
touches SQLite runs in threads.

Either direction answers ``None`` when the delta path does not apply (a server without
the endpoints, a file the server cannot chunk now, most of the file missing locally):
the caller then uses the whole-file transfer. Nothing here makes anything visible:
uploads end in the server's verified, conditional commit; downloads end in a verified
temp file the caller renames with its usual checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import treq
from twisted.internet.defer import DeferredSemaphore, gatherResults
from twisted.internet.threads import deferToThread

from caddytw.sync.chunks import (
    MAX_HEIGHT,
    ChunkCache,
    Node,
    Ref,
    Tree,
    TreeError,
    expand,
    read_verified,
)
from caddytw.sync.compression import compress, compressible
from caddytw.sync.localfs import StatKey
from caddytw.sync.protocol import (
    HEADER_MODIFIED,
    DeltaCommit,
    DeltaPlan,
    FileMetadata,
    ProtocolError,
    format_etag,
    format_time,
    loads,
)
from synclient.remote import HashMismatch, NotFound, Remote, RemoteError, download_temp

#: Bytes of chunks per ``delta/chunks`` request: what an interrupted upload can lose.
BATCH_BYTES = 1024 * 1024
#: Fetch at most this much as separate chunks; more (or over half the file) goes whole.
MAX_FETCH_BYTES = 32 * 1024 * 1024
FETCH_PARALLEL = 4
#: Nodes per ``delta/plan`` or ``delta/nodes`` request (bodies stay far below the limits).
NODES_PER_REQUEST = 512
#: A download whose tree is more than half unknown past this many nodes goes whole.
FEW_NODES = 64


class LocalChanged(OSError):
    """The local file is not the version the plan uploads (edited meanwhile)."""


class DeltaClient:
    """Delta uploads and downloads for the folder ``root`` against ``remote``."""

    def __init__(self, remote: Remote, root: Path, cache: ChunkCache) -> None:
        self.remote = remote
        self.root = root
        self.cache = cache
        #: False once the server answered 404 to a delta endpoint (an older server).
        self.supported = True

    @classmethod
    def open(cls, remote: Remote, root: Path, state_dir: Path) -> DeltaClient:
        """The delta client of a folder whose state lives in ``state_dir``."""
        return cls(remote, root, ChunkCache(state_dir / "chunks.db"))

    def close(self) -> None:
        self.cache.close()

    async def _post(self, endpoint: str, body: bytes, content_type: str, extra: Any = None) -> Any:
        headers = self.remote.headers({"Content-Type": content_type, **(extra or {})})
        return await self.remote._request(
            "POST", self.remote.url(endpoint), headers=headers, data=body
        )

    async def _post_json(self, endpoint: str, value: Any) -> Any:
        response = await self._post(endpoint, json.dumps(value).encode(), "application/json")
        await self._checked(response, endpoint)
        return loads(await treq.content(response))

    async def _checked(self, response: Any, what: str, about_path: bool = False) -> None:
        """Raise for a non-2xx answer. A 404 from an endpoint that never answers 404
        for a path means a server without delta transfers: stop trying them. (``about_path``:
        the 404 may be about the file or chunk asked for.)"""
        try:
            await self.remote._check(response, what)
        except NotFound:
            if not about_path:
                self.supported = False
            raise

    # -- uploads ------------------------------------------------------------------------

    async def upload(
        self, path: str, sha256: str, expect: str | None, mtime: float | None
    ) -> FileMetadata | None:
        """Upload the local ``path`` (whose content the plan says is ``sha256``) as a
        delta. Returns the server's metadata, or ``None``: use the whole-file upload."""
        if not self.supported:
            return None
        tree, whole, _stat = await deferToThread(self.cache.tree_of, self.root, path)
        if whole != sha256:
            raise LocalChanged(f"{path} changed since it was scanned")
        try:
            missing = await self._plan(path, tree, whole)
            await self._send(path, tree, missing)
            for _attempt in range(3):
                response = await self._commit(path, tree, whole, expect, mtime)
                if response.code != 409:
                    await self._checked(response, f"delta upload {path}")
                    return FileMetadata.from_json(loads(await treq.content(response)))
                data = _json_or_none(await treq.content(response))
                again = data.get("missing_chunks") if isinstance(data, dict) else None
                if not isinstance(again, list) or not again:
                    raise RemoteError(f"delta upload {path}: HTTP 409 {data}", 409)
                await self._send(path, tree, set(map(str, again)))
        except NotFound:
            return None
        except ProtocolError as error:
            raise RemoteError(f"delta upload {path}: bad answer: {error}") from None
        raise RemoteError(f"delta upload {path}: chunks keep going missing", 409)

    async def _plan(self, path: str, tree: Tree, whole: str) -> set[str]:
        """Rounds of ``delta/plan``: send the root, then the nodes the server does not
        know; collect the chunks it lacks."""
        sending = [tree.nodes[tree.root]]
        missing: set[str] = set()
        for _round in range(MAX_HEIGHT + 1):
            unknown: list[Node] = []
            for start in range(0, len(sending), NODES_PER_REQUEST):
                part = tuple(n.to_json() for n in sending[start : start + NODES_PER_REQUEST])
                plan = DeltaPlan(path, tree.size, whole, tree.root, part)
                answer = await self._post_json("delta/plan", plan.to_json())
                missing.update(map(str, answer.get("missing_chunks", [])))
                named = answer.get("unknown_nodes", [])
                unknown += [tree.nodes[h] for h in named if h in tree.nodes]
            if not unknown:
                return missing
            sending = unknown
        raise RemoteError(f"delta upload {path}: the tree exchange did not end")

    async def _send(self, path: str, tree: Tree, wanted: set[str]) -> None:
        """Upload the chunks ``wanted`` in framed batches, reading (and re-verifying)
        them from the local file."""
        places: dict[str, tuple[int, int]] = {}
        offset = 0
        for key, length in tree.chunks:
            places.setdefault(key, (offset, length))
            offset += length
        todo = [
            (key, *places[key])
            for key in sorted(wanted, key=lambda k: places.get(k, (0,))[0])
            if key in places
        ]
        batch: list[tuple[str, int, int]] = []
        size = 0
        for item in todo:
            batch.append(item)
            size += item[2]
            if size >= BATCH_BYTES:
                await self._send_batch(path, batch)
                batch, size = [], 0
        if batch:
            await self._send_batch(path, batch)

    async def _send_batch(self, path: str, batch: list[tuple[str, int, int]]) -> None:
        full = self.root / path

        def frames() -> bytes:
            parts: list[bytes] = []
            for key, offset, length in batch:
                data = read_verified(full, offset, length, key)
                if data is None:
                    raise LocalChanged(f"{path} changed while it was uploaded")
                parts.append(bytes.fromhex(key) + length.to_bytes(4, "big") + data)
            return b"".join(parts)

        remote = self.remote
        zstd = remote.compression and remote.server_takes_zstd

        def framed() -> tuple[bytes, bool]:
            body = frames()
            if zstd and compressible(body[:65536]):
                return compress(body), True
            return body, False

        body, packed = await deferToThread(framed)
        extra = {"Content-Encoding": "zstd"} if packed else None
        response = await self._post("delta/chunks", body, "application/octet-stream", extra)
        await self._checked(response, f"delta upload {path}")
        await treq.content(response)

    async def _commit(
        self, path: str, tree: Tree, whole: str, expect: str | None, mtime: float | None
    ) -> Any:
        extra = {"If-None-Match": "*"} if expect is None else {"If-Match": format_etag(expect)}
        if mtime:
            extra[HEADER_MODIFIED] = format_time(datetime.fromtimestamp(mtime, UTC))
        body = DeltaCommit(path, tree.size, whole, tree.root).to_json()
        return await self._post(
            "delta/commit", json.dumps(body).encode(), "application/json", extra
        )

    # -- downloads ----------------------------------------------------------------------

    async def download(
        self,
        path: str,
        target: Path,
        expected_hash: str,
        expected_size: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> tuple[Path, Tree] | None:
        """Build the server's ``path`` (``expected_hash``) into the resumable temp file
        beside ``target`` from local chunks plus the ones fetched; verified and fsynced.
        ``None``: download it whole instead."""
        if not self.supported:
            return None
        relative = target.relative_to(self.root).as_posix()
        if not await deferToThread(self._chunk_base, relative):
            # Nothing local to build from (a first sync): asking for the server's tree
            # would only make it chunk the whole file (seconds for 1 GiB) to no use.
            return None
        try:
            response = await self.remote._get(self.remote.url("chunks", path=path))
            if response.code == 409:
                await treq.content(response)
                return None
            await self._checked(response, f"delta download {path}", about_path=True)
            info = loads(await treq.content(response))
            if not isinstance(info, dict) or info.get("sha256") != expected_hash:
                return None
            tree = await self._resolve(info)
            if tree is None or tree.size != expected_size:
                return None
            wanted = await deferToThread(self._missing, tree)
            if sum(n for _, n in wanted) > min(MAX_FETCH_BYTES, expected_size // 2):
                return None
            fetched = await self._fetch(wanted, on_bytes)
            temp = download_temp(target, expected_hash)
            late = await deferToThread(self._assemble, temp, tree, fetched, expected_hash)
            if late:  # a local copy changed under us: fetch those too, once
                fetched.update(await self._fetch(late, on_bytes))
                late = await deferToThread(self._assemble, temp, tree, fetched, expected_hash)
                if late:
                    return None
        except NotFound:
            return None
        except (ProtocolError, TreeError) as error:
            raise RemoteError(f"delta download {path}: bad answer: {error}") from None
        return temp, tree

    def _chunk_base(self, relative: str) -> bool:
        """Chunk the local file being replaced (cached), so its chunks are known;
        whether any local chunk is known at all."""
        with contextlib.suppress(OSError):
            self.cache.tree_of(self.root, relative)
        return self.cache.knows_chunks()

    async def _resolve(self, info: dict[str, Any]) -> Tree | None:
        """The server file's tree: nodes this side knows come from the cache, the rest
        from ``delta/nodes``, level by level."""
        known: dict[str, Node] = {}
        for raw in info.get("nodes", []):
            node = Node.from_json(raw)
            known[node.hash] = node
        root = str(info.get("root"))
        for _round in range(MAX_HEIGHT + 1):
            unknown, looked_up = await deferToThread(self._unknown, root, known)
            if not unknown:
                chunks = expand(root, known.get)
                return Tree(tuple(chunks), known, root)
            if len(unknown) > FEW_NODES and 2 * len(unknown) > looked_up:
                return None  # mostly new to this folder: the whole file is cheaper
            for start in range(0, len(unknown), NODES_PER_REQUEST):
                part = unknown[start : start + NODES_PER_REQUEST]
                answer = await self._post_json("delta/nodes", {"hashes": part})
                for raw in answer.get("nodes", []):
                    node = Node.from_json(raw)
                    known[node.hash] = node
            if any(h not in known for h in unknown):
                return None
        return None

    def _unknown(self, root: str, known: dict[str, Node]) -> tuple[list[str], int]:
        """Nodes under ``root`` neither in ``known`` nor in the cache (cached ones are
        added to ``known``), and how many nodes were looked up in the cache."""
        unknown: list[str] = []
        looked_up = 0
        stack = [root]
        while stack:
            key = stack.pop()
            node = known.get(key)
            if node is None:
                looked_up += 1
                node = self.cache.node(key)
                if node is None:
                    unknown.append(key)
                    continue
                known[key] = node
            if node.height > 1:
                stack.extend(child for child, _ in node.children)
        return list(dict.fromkeys(unknown)), looked_up

    def _missing(self, tree: Tree) -> list[Ref]:
        have = self.cache.has_chunks(k for k, _ in tree.chunks)
        return list(dict.fromkeys(ref for ref in tree.chunks if ref[0] not in have))

    async def _fetch(
        self, wanted: list[Ref], on_bytes: Callable[[int], None] | None
    ) -> dict[str, bytes]:
        """``GET chunk/<sha256>`` for each, a few at a time, each verified."""
        semaphore = DeferredSemaphore(FETCH_PARALLEL)
        out: dict[str, bytes] = {}

        async def one(key: str) -> None:
            response = await self.remote._get(self.remote.url(f"chunk/{key}"))
            await self._checked(response, f"chunk {key[:16]}", about_path=True)
            data = await treq.content(response)
            if hashlib.sha256(data).hexdigest() != key:
                raise HashMismatch(f"chunk {key[:16]}... does not match its hash")
            out[key] = data
            if on_bytes is not None:
                on_bytes(len(data))

        from twisted.internet.defer import Deferred

        from synclient.apply import _first_error

        def start(key: str) -> Deferred[None]:
            return Deferred.fromCoroutine(one(key))

        await gatherResults(
            [semaphore.run(start, key) for key, _ in wanted], consumeErrors=True
        ).addErrback(_first_error)
        return out

    def _assemble(
        self, temp: Path, tree: Tree, fetched: dict[str, bytes], expected: str
    ) -> list[Ref]:
        """Write the new version into ``temp`` chunk by chunk, verifying each; fsync and
        check the whole SHA-256. Returns chunks no local file holds any more (the temp
        file is then removed)."""
        digest = hashlib.sha256()
        late: list[Ref] = []
        with open(temp, "wb") as sink:
            for key, length in tree.chunks:
                data = fetched.get(key)
                if data is None:
                    data = self.cache.read_chunk(self.root, key)
                if data is None or len(data) != length:
                    late.append((key, length))
                    continue
                if not late:
                    sink.write(data)
                    digest.update(data)
            if not late:
                sink.flush()
                os.fsync(sink.fileno())
        if late:
            temp.unlink(missing_ok=True)
            return list(dict.fromkeys(late))
        if digest.hexdigest() != expected:
            temp.unlink(missing_ok=True)
            raise HashMismatch(f"{temp.name}: the assembled file does not match its hash")
        return []

    def remember(self, path: str, stat: StatKey, sha256: str, tree: Tree) -> None:
        """Record a downloaded file's cut (blocking: call in a thread)."""
        self.cache.record(path, stat, sha256, tree)


def _json_or_none(body: bytes) -> Any:
    try:
        return loads(body)
    except ProtocolError:
        return None
