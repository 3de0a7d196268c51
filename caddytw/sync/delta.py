"""Delta transfers on the server: the ``file_sync`` endpoints that move only the chunks
the other side lacks (shapes in :mod:`caddytw.sync.protocol`, under "Delta transfers").

Uploads: ``POST delta/plan`` (rounds of tree nodes, answered with the nodes the server
does not know and the chunks it lacks), ``POST delta/chunks`` (verified chunks, framed,
kept in a staging folder beside the index, outside the served tree, until they are used
or expire: an interrupted upload resumes from them), ``POST delta/commit`` (assemble the
file from staged chunks and chunks of any file in the folder, through the store's
ordinary :meth:`~caddytw.sync.store.LocalSyncStore.put`: signed temp file, whole-file
SHA-256 check, ``If-Match``/``If-None-Match``, atomic place, journal and events exactly as
for a whole-file upload). Downloads: ``GET chunks?path=`` (the file's root node),
``POST delta/nodes`` (nodes by hash) and ``GET chunk/<sha256>`` (one verified chunk).

Chunking, hashing and the chunk cache run on the reactor's thread pool; the endpoints
only await them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Container, Coroutine
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from twisted.internet.threads import deferToThreadPool

from caddytw.sync.chunks import (
    DELTA_MIN_SIZE,
    MAX_CHUNK,
    ChunkCache,
    FileChanged,
    Node,
    Ref,
    Tree,
    TreeError,
    diff_round,
    expand,
    is_hash,
)
from caddytw.sync.compression import (
    DecodedTooLarge,
    DecodeError,
    decompress,
    is_identity,
    is_zstd,
)
from caddytw.sync.folder import StoreError, checked_path
from caddytw.sync.localfs import StatKey, open_regular
from caddytw.sync.protocol import (
    HEADER_MODIFIED,
    DeltaCommit,
    DeltaPlan,
    ProtocolError,
    dumps,
    loads,
    parse_time,
)

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest
    from caddytw.sync.access import SyncClient
    from caddytw.sync.api import SyncEndpoints
    from caddytw.sync.store import LocalSyncStore

T = TypeVar("T")
#: Largest ``delta/chunks`` body (a batch of frames) and ``delta/plan`` body.
MAX_CHUNK_BATCH = 8 * 1024 * 1024
MAX_PLAN_BODY = 4 * 1024 * 1024
MAX_NODES_ASKED = 4096
#: Staged chunks not used by a commit are removed after this many seconds.
STAGING_TTL = 24 * 3600.0
FRAME_HEAD = 36  # 32-byte SHA-256 + 4-byte big-endian length

Endpoint = Callable[["CaddyRequest", "SyncClient | None"], Coroutine[Any, Any, None]]


class ChunkStaging:
    """Uploaded chunks, one file per SHA-256, in a folder beside the index (never in the
    served tree). Content-addressed, so a restarted upload (or another client sending
    the same bytes) finds them; unused ones expire after :data:`STAGING_TTL`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._swept = 0.0

    def path(self, key: str) -> Path:
        return self.folder / key

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def read(self, key: str) -> bytes | None:
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != key:
            self.discard(key)  # a damaged staged chunk is as good as none
            return None
        return data

    def store(self, key: str, data: bytes) -> None:
        """Keep ``data`` (already verified) as chunk ``key``: temp file, rename."""
        target = self.path(key)
        if target.exists():
            os.utime(target)
            return
        temp = self.folder / f".{key}.{secrets.token_hex(6)}.tmp"
        with open(temp, "wb") as sink:
            sink.write(data)
        os.replace(temp, target)

    def discard(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path(key))

    def sweep(self, now: float | None = None) -> int:
        """Remove staged chunks (and stray temp files) older than the TTL; at most once
        a minute."""
        now = time.time() if now is None else now
        if now - self._swept < 60:
            return 0
        self._swept = now
        removed = 0
        with os.scandir(self.folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > STAGING_TTL:
                        os.unlink(entry.path)
                        removed += 1
        return removed


def parse_frames(source: BinaryIO) -> list[tuple[str, bytes]]:
    """``delta/chunks`` frames: (SHA-256 (32 bytes), length (4 bytes, big-endian),
    bytes)*; each chunk verified. Raises :class:`StoreError` 400/422."""
    out: list[tuple[str, bytes]] = []
    while head := source.read(FRAME_HEAD):
        if len(head) != FRAME_HEAD:
            raise StoreError(400, "a chunk frame is cut short")
        key, length = head[:32].hex(), int.from_bytes(head[32:], "big")
        if not 0 < length <= MAX_CHUNK:
            raise StoreError(400, f"chunks are 1..{MAX_CHUNK} bytes")
        data = source.read(length)
        if len(data) != length:
            raise StoreError(400, "a chunk frame is cut short")
        if hashlib.sha256(data).hexdigest() != key:
            raise StoreError(422, f"chunk {key[:16]}... does not match its SHA-256")
        out.append((key, data))
    return out


class ChunkReader:
    """The assembled new version as a readable stream (for the store's ``stage``, on a
    pool thread): each chunk from staging or from any file of the folder, verified; a
    chunk found nowhere fails the upload (409) before anything is placed."""

    def __init__(self, delta: DeltaService, chunks: list[Ref]) -> None:
        self.delta = delta
        self.chunks = iter(chunks)

    def read(self, _size: int = -1) -> bytes:
        ref = next(self.chunks, None)
        if ref is None:
            return b""
        data = self.delta.chunk_bytes(ref[0])
        if data is None or len(data) != ref[1]:
            raise StoreError(409, f"chunk {ref[0][:16]}... is no longer on the server; plan again")
        return data


class DeltaService:
    """The delta endpoints of one ``file_sync`` handler over a :class:`LocalSyncStore`."""

    def __init__(self, resource: SyncEndpoints, store: LocalSyncStore) -> None:
        self.resource = resource
        self.store = store
        self._cache: ChunkCache | None = None
        self._staging: ChunkStaging | None = None
        self._opening = threading.Lock()

    @property
    def cache(self) -> ChunkCache:
        """Opened on first use (a pool thread), beside the index: never in the served
        tree, and nothing is created when a config is only loaded."""
        with self._opening:
            if self._cache is None:
                self._cache = ChunkCache(self.store.core.work_dir / "chunks.db")
            return self._cache

    @property
    def staging(self) -> ChunkStaging:
        with self._opening:
            if self._staging is None:
                self._staging = ChunkStaging(self.store.core.work_dir / "chunk-staging")
            return self._staging

    def endpoints(self) -> dict[str, tuple[tuple[bytes, ...], bool, Endpoint]]:
        """Entries for the resource's routing table (name -> methods, writes, handler)."""
        return {
            "delta/plan": ((b"POST",), True, self.plan),
            "delta/chunks": ((b"POST",), True, self.put_chunks),
            "delta/commit": ((b"POST",), True, self.commit),
            "delta/nodes": ((b"POST",), False, self.nodes),
            "chunks": ((b"GET",), False, self.tree),
            "chunk": ((b"GET", b"HEAD"), False, self.get_chunk),
        }

    def _pool(self, work: Callable[..., T], *args: Any) -> Any:
        reactor = self.store.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), work, *args)

    # -- blocking helpers (pool threads) -----------------------------------------------

    def chunk_bytes(self, key: str) -> bytes | None:
        data = self.staging.read(key)
        if data is None:
            data = self.cache.read_chunk(self.store.root, key)
        return data

    def available(self, keys: list[str]) -> set[str]:
        """Which chunks the server can produce now: staged, or in a file whose cut is
        still current (its stat unchanged since it was chunked)."""
        found = {k for k in keys if self.staging.has(k)}
        fresh: dict[str, bool] = {}
        for key in set(keys) - found:
            for path, _offset, _length in self.cache.locations(key):
                if path not in fresh:
                    fresh[path] = self._current(path)
                if fresh[path]:
                    found.add(key)
                    break
        return found

    def _current(self, path: str) -> bool:
        try:
            fd, info = open_regular(self.store.root / path)
        except OSError:
            return False
        os.close(fd)
        return self.cache.file(path, StatKey.of(info)) is not None

    def chunk_current(self, path: str) -> tuple[Tree, str] | None:
        """Chunk the served file ``path`` (cached by stat); ``None`` when it is absent,
        small, or kept changing."""
        try:
            _fd, info = open_regular(self.store.root / path)
        except OSError:
            return None
        os.close(_fd)
        if info.st_size < DELTA_MIN_SIZE:
            return None
        try:
            tree, whole, _stat = self.cache.tree_of(self.store.root, path)
        except (OSError, FileChanged):
            return None
        return tree, whole

    def _plan(self, plan: DeltaPlan) -> dict[str, Any]:
        self.staging.sweep()
        self.chunk_current(plan.path)  # the version it replaces: its chunks are reusable
        nodes = [Node.from_json(raw) for raw in plan.nodes]
        self.cache.add_nodes(nodes)
        unknown, missing = diff_round(
            nodes, lambda key: self.cache.node(key, in_file=True) is not None, self.available
        )
        return {"unknown_nodes": unknown, "missing_chunks": missing}

    def _chunks_for(self, commit: DeltaCommit) -> list[Ref]:
        try:
            chunks = expand(commit.root, self.cache.node)
        except TreeError as error:
            raise StoreError(409, f"{error}: send the tree again (delta/plan)") from None
        if sum(n for _, n in chunks) != commit.size:
            raise StoreError(400, "the tree's chunks do not add up to the declared size")
        return chunks

    def _after_commit(self, commit: DeltaCommit, chunks: list[Ref]) -> None:
        """Remember the new file's cut (its chunks are now reusable from there) and drop
        the staged chunks it used."""
        try:
            fd, info = open_regular(self.store.root / commit.path)
        except OSError:
            return
        os.close(fd)
        tree = self.cache.load_tree(commit.root)  # with its nodes: now vouched for
        if info.st_size == commit.size and tree is not None:
            self.cache.record(commit.path, StatKey.of(info), commit.sha256, tree)
        for key, _length in chunks:
            self.staging.discard(key)

    # -- endpoints ---------------------------------------------------------------------

    async def _json_body(self, request: CaddyRequest, limit: int) -> Any:
        from caddytw.sync.api import ApiError, body_of

        self._refuse_large(request, limit)
        with await body_of(request, limit) as content:
            data = content.read()
        try:
            return loads(data)
        except ProtocolError as error:
            raise ApiError(400, str(error)) from None

    @staticmethod
    def _refuse_large(request: CaddyRequest, limit: int) -> None:
        """413 for a declared length over ``limit``, before a byte of the body is read."""
        from caddytw.sync.api import ApiError

        declared = (request.getHeader(b"content-length") or b"").strip()
        if declared.isdigit() and (len(declared) > 20 or int(declared) > limit):
            raise ApiError(413, f"this endpoint takes at most {limit} bytes")

    async def plan(self, request: CaddyRequest, client: SyncClient | None) -> None:
        plan = DeltaPlan.from_json(await self._json_body(request, MAX_PLAN_BODY))
        checked_path(plan.path)
        try:
            answer = await self._pool(self._plan, plan)
        except TreeError as error:
            raise StoreError(400, str(error)) from None
        self.resource.send(request, 200, dumps(answer))

    async def put_chunks(self, request: CaddyRequest, client: SyncClient | None) -> None:
        from caddytw.sync.api import body_of

        self._refuse_large(request, MAX_CHUNK_BATCH)
        coding = request.header_text("Content-Encoding")
        if not (is_identity(coding) or is_zstd(coding)):
            raise StoreError(415, f"Content-Encoding {coding!r}: only zstd or identity")

        def frames_of(content: BinaryIO) -> list[tuple[str, bytes]]:
            if is_zstd(coding):  # the decoded size is limited as well (a zstd bomb: 413)
                try:
                    content = BytesIO(decompress(content.read(), MAX_CHUNK_BATCH))
                except DecodedTooLarge:
                    raise StoreError(413, f"at most {MAX_CHUNK_BATCH} bytes decoded") from None
                except DecodeError as error:
                    raise StoreError(400, f"zstd body: {error}") from None
            return parse_frames(content)

        with await body_of(request, MAX_CHUNK_BATCH) as content:
            frames = await self._pool(frames_of, content)

        def keep() -> None:
            for key, data in frames:
                self.staging.store(key, data)

        await self._pool(keep)
        self.resource.send(request, 200, dumps({"stored": [key for key, _ in frames]}))

    async def commit(self, request: CaddyRequest, client: SyncClient | None) -> None:
        from caddytw.sync.api import metadata_headers, preconditions

        commit = DeltaCommit.from_json(await self._json_body(request, MAX_PLAN_BODY))
        checked_path(commit.path)
        limit = self.resource.max_upload_size
        if limit and commit.size > limit:
            raise StoreError(413, f"uploads are limited to {limit} bytes")
        modified_ns = None
        modified_text = request.header_text(HEADER_MODIFIED)
        if modified_text is not None:
            moment = parse_time(modified_text.strip(), HEADER_MODIFIED)
            modified_ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
        chunks = await self._pool(self._chunks_for, commit)
        present = await self._pool(self.available, [k for k, _ in chunks])
        missing = list(dict.fromkeys(k for k, _ in chunks if k not in present))
        if missing:
            body = dumps({"error": "chunks are missing", "missing_chunks": missing})
            self.resource.send(request, 409, body)
            return
        meta, status = await self.store.put(
            commit.path,
            ChunkReader(self, chunks),  # type: ignore[arg-type]
            commit.sha256,
            preconditions(request),
            modified_ns,
            self.resource.origin(request, client),
            lambda: request.client_gone,
        )
        await self._pool(self._after_commit, commit, chunks)
        metadata_headers(request, meta)
        self.resource.send(request, 201 if status == "created" else 200, dumps(meta))

    async def tree(self, request: CaddyRequest, client: SyncClient | None) -> None:
        from caddytw.sync.api import ApiError, query_value

        path = checked_path(query_value(request, "path") or "")
        meta = await self.store.metadata(path)
        if meta is None or meta.is_directory:
            raise ApiError(404, f"{path!r} is not a file")
        found = await self._pool(self.chunk_current, path)
        if found is None:
            raise ApiError(409, f"{path!r} is small or being changed: download it whole")
        tree, whole = found
        if whole != meta.hash:
            raise ApiError(409, f"{path!r} is being changed on the server; retry")
        body = {
            "path": path,
            "size": tree.size,
            "sha256": whole,
            "root": tree.root,
            "nodes": [tree.nodes[tree.root].to_json()],
        }
        self.resource.send(request, 200, dumps(body))

    async def nodes(self, request: CaddyRequest, client: SyncClient | None) -> None:
        from caddytw.sync.api import ApiError

        data = await self._json_body(request, MAX_PLAN_BODY)
        hashes = data.get("hashes") if isinstance(data, dict) else None
        if not isinstance(hashes, list) or len(hashes) > MAX_NODES_ASKED:
            raise ApiError(400, f'"hashes" must be a list of at most {MAX_NODES_ASKED} hashes')
        if not all(is_hash(h) for h in hashes):
            raise ApiError(400, '"hashes" holds SHA-256 hex strings')

        def look() -> list[dict[str, Any]]:
            found = (self.cache.node(h) for h in hashes)
            return [node.to_json() for node in found if node is not None]

        self.resource.send(request, 200, dumps({"nodes": await self._pool(look)}))

    async def get_chunk(self, request: CaddyRequest, client: SyncClient | None) -> None:
        from caddytw.sync.api import ApiError

        key = request.decoded_path.rstrip("/").rsplit("/", 1)[-1]
        if not is_hash(key):
            raise ApiError(400, "chunk/<sha256>: 64 lowercase hex digits")
        data = await self._pool(self.chunk_bytes, key)
        if data is None:
            raise ApiError(404, f"chunk {key[:16]}... is not on the server")
        immutable = b"private, max-age=31536000, immutable"  # named by its content
        self.resource.send(request, 200, data, b"application/octet-stream", immutable)


def delta_name(path: str, known: Container[str]) -> str:
    """The routing name of a sync API path: its last segment, except for the delta
    endpoints (``.../delta/plan`` -> ``delta/plan``, ``.../chunk/<hash>`` -> ``chunk``)
    when they are in ``known`` (a prefix that happens to end in ``delta`` or ``chunk``
    keeps the original design brief's endpoints working; ``chunk`` only before a SHA-256)."""
    parts = path.rstrip("/").rsplit("/", 2)
    if len(parts) >= 2:
        name = f"delta/{parts[-1]}" if parts[-2] == "delta" else parts[-2]
        if name in known and (parts[-2] == "delta" or (name == "chunk" and is_hash(parts[-1]))):
            return name
    return parts[-1]
