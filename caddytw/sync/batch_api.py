"""The batch endpoints of ``file_sync``: ``batch/upload`` and ``batch/download``.

Framing and JSON shapes are in :mod:`caddytw.sync.batch`. Here: each uploaded entry goes
through the store's ``put`` (the one verify-then-rename path, under the path lock), a
few at a time, each read from the body in a thread; the download answer streams entry
by entry, paced by the transport, files read (and compressed) in threads.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from caddytw.sync.batch import CONTENT_TYPE, MAX_ENTRIES, BatchError, end_line, header_line
from caddytw.sync.batch import read_entries as _read_entries
from caddytw.sync.compression import (
    ENCODING,
    DecodedTooLarge,
    DecodeError,
    DecodingReader,
    Encoder,
    accepts_zstd,
    compressible,
    is_identity,
    is_zstd,
)
from caddytw.sync.core import Conflict, Preconditions, Unstorable
from caddytw.sync.folder import StoreError
from caddytw.sync.protocol import (
    FileMetadata,
    ProtocolError,
    format_time,
    loads,
    parse_time,
    validate_hash,
)

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest
    from caddytw.sync.access import SyncClient
    from caddytw.sync.api import SyncEndpoints

#: Largest entry in a batch: bigger files take ``/api/upload`` (streamed, resumable).
MAX_BATCH_ENTRY = 1024 * 1024
#: Entries stored at once (bounds memory to this many entries' bytes).
PARALLEL_PUTS = 8
#: Files of a batch download opened (one hop to the index thread) and read (one hop to
#: the pool) together, and groups read ahead of the one being sent.
GROUP = 64
READ_AHEAD = 2
#: Bytes of entry data looked at before deciding whether to compress an answer.
DECIDE_AFTER = 64 * 1024


def _conditions(header: dict[str, Any]) -> Preconditions:
    if_match = header.get("if_match")
    if_none_match = header.get("if_none_match")
    if if_match is not None:
        return Preconditions((validate_hash(if_match, "if_match"),), None)
    if if_none_match is not None:
        if if_none_match != "*":
            raise ProtocolError("if_none_match", 'only "*" is allowed')
        return Preconditions(None, ("*",))
    return Preconditions()


def _modified_ns(header: dict[str, Any]) -> int | None:
    text = header.get("modified")
    if text is None:
        return None
    moment = parse_time(text, "modified")
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _failure(error: Exception) -> dict[str, Any]:
    if isinstance(error, Conflict | Unstorable):
        return {"status": error.status, "error": error.message, "conflict": error.info.to_json()}
    if isinstance(error, StoreError):
        return {"status": error.status, "error": error.message}
    return {"status": 400, "error": str(error)}


async def batch_upload(
    resource: SyncEndpoints, request: CaddyRequest, client: SyncClient | None
) -> None:
    from caddytw.sync.api import ApiError, body_of

    coding = request.header_text("Content-Encoding")
    if not (is_identity(coding) or is_zstd(coding)):
        raise ApiError(415, f"Content-Encoding {coding!r}: only zstd or identity")
    limit = resource.max_upload_size or None
    entry_limit = min(limit or MAX_BATCH_ENTRY, MAX_BATCH_ENTRY)
    origin = resource.origin(request, client)
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))
    results: list[dict[str, Any]] = []

    async def store(index: int, header: dict[str, Any], body: bytes) -> None:
        path = header.get("path")
        result: dict[str, Any] = {"index": index, "path": path}
        try:
            if not isinstance(path, str):
                raise ProtocolError("path", "not a string")
            expected = validate_hash(header.get("sha256"), "sha256")
            meta, status = await resource.store.put(
                path,
                io.BytesIO(body),
                expected,
                _conditions(header),
                _modified_ns(header),
                origin,
                lambda: bool(gone) or request.client_gone,
            )
            result.update(status=201 if status == "created" else 200, metadata=meta.to_json())
        except (StoreError, ProtocolError) as error:
            result.update(_failure(error))
        results.append(result)

    with await body_of(request, limit) as content:
        source = cast(BinaryIO, DecodingReader(content, limit) if is_zstd(coding) else content)
        entries = _read_entries(source, entry_limit)

        def next_entry() -> tuple[dict[str, Any], bytes] | None:
            header = next(entries, None)
            if header is None:
                return None
            body = source.read(header["size"])
            if len(body) != header["size"]:
                raise BatchError("batch stream cut short inside an entry")
            return header, body

        slots = DeferredSemaphore(PARALLEL_PUTS)
        running: list[Deferred[Any]] = []
        problem: ApiError | None = None
        index = 0
        while not (gone or request.client_gone):
            try:
                item = await resource.in_thread(next_entry)
            except DecodedTooLarge:
                problem = ApiError(413, f"uploads are limited to {limit} bytes (decoded)")
                break
            except (BatchError, DecodeError) as error:
                problem = ApiError(400, f"batch body: {error}")
                break
            if item is None:
                break
            await slots.acquire()  # at most PARALLEL_PUTS entries in memory
            work = ensureDeferred(store(index, *item))
            work.addBoth(_release, slots)
            running.append(work)
            index += 1
        await gatherResults(running, consumeErrors=True)
    if problem is not None:
        # Entries before the fault are committed (each on its own, atomically); the
        # answer names them so the client need not guess.
        done = sorted(results, key=lambda r: r["index"])
        problem.message = f"{problem.message}; {len(done)} entries before it were processed"
        raise problem
    results.sort(key=lambda r: r["index"])
    resource.send(request, 200, _json({"results": results}))


def _release(result: Any, slots: DeferredSemaphore) -> Any:
    slots.release()
    return result


def _json(value: Any) -> bytes:
    from caddytw.sync.protocol import dumps

    return dumps(value)


@implementer(IPushProducer)
class _Pacer:
    """Lets an async loop wait while the transport's buffers are full."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.paused = False
        self.stopped = False
        self._waiting: Deferred[None] | None = None
        request.registerProducer(self, True)

    async def ready(self) -> None:
        while self.paused and not self.stopped:
            self._waiting = Deferred()
            await self._waiting

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        self.stopped = True
        self._wake()


def _read_all(source: BinaryIO, size: int) -> bytes:
    with source:
        data = source.read(size + 1)
    if len(data) != size:
        raise StoreError(409, "the file changed while it was being read; retry")
    return data


def _read_group(
    paths: list[str], opened: list[tuple[BinaryIO, FileMetadata] | StoreError]
) -> list[bytes]:
    """Runs in a thread: each opened file's entry (header and bytes), or its error."""
    pieces = []
    for path, item in zip(paths, opened, strict=True):
        try:
            if isinstance(item, StoreError):
                raise item
            source, meta = item
            if meta.size > MAX_BATCH_ENTRY:
                source.close()
                raise StoreError(413, f"{meta.size} bytes: download it on its own")
            try:
                data = _read_all(source, meta.size)
            except OSError as error:
                raise StoreError(409, f"cannot be read now: {error}") from None
            fields = {
                "path": path,
                "status": 200,
                "size": meta.size,
                "sha256": meta.hash,
                "modified": format_time(meta.modified),
            }
            pieces.append(header_line(fields) + data)
        except StoreError as error:
            pieces.append(header_line({"path": path, **_failure(error)}))
    return pieces


async def batch_download(
    resource: SyncEndpoints, request: CaddyRequest, client: SyncClient | None
) -> None:
    from caddytw.sync.api import MAX_SYNC_BODY, ApiError, body_of

    with await body_of(request, MAX_SYNC_BODY) as content:
        body = content.read()
    data = loads(body)
    paths = data.get("paths") if isinstance(data, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ApiError(400, '$.paths: expected {"paths": [string, ...]}')
    if len(paths) > MAX_ENTRIES:
        raise ApiError(413, f"$.paths: at most {MAX_ENTRIES} entries per batch")

    async def group(names: list[str]) -> list[bytes]:
        opened = await resource.store.open_files(names)
        pieces = await resource.in_thread(_read_group, names, opened)
        # One write (one HTTP chunk) per group, not per entry: a write, an await and a
        # chunk header for each 4 KiB file cost more than its bytes.
        return [b"".join(pieces)]

    request.setHeader(b"content-type", CONTENT_TYPE.encode("ascii"))
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"vary", b"Accept-Encoding")
    wants_zstd = accepts_zstd(request.getHeader(b"accept-encoding"))
    pieces = _pieces(paths, group)
    held: list[bytes] = []
    seen = 0
    # Decide on compression from the first entries' bytes (the sample), then stream.
    async for piece in pieces:
        held.append(piece)
        seen += len(piece)
        if seen >= DECIDE_AFTER:
            break
    encoder = Encoder() if wants_zstd and compressible(b"".join(held)[:DECIDE_AFTER]) else None
    if encoder is not None:
        request.setHeader(b"content-encoding", ENCODING.encode("ascii"))
    pacer = _Pacer(request)
    try:

        async def out(data: bytes, last: bool = False) -> None:
            if encoder is not None:
                data = encoder.encode(data) + (encoder.finish() if last else b"")
            if data and not pacer.stopped:
                await pacer.ready()
                request.write(data)

        for piece in held:
            await out(piece)
        async for piece in pieces:
            if pacer.stopped or request.client_gone:
                return
            await out(piece)
        await out(end_line(len(paths)), last=True)
    finally:
        if request.producer is pacer:
            request.unregisterProducer()
    if not request.client_gone:
        request.finish()


async def _pieces(paths: list[str], group: Any) -> Any:
    """Entries in order, :data:`GROUP` files per thread hop, a group read ahead (reads
    overlap the writes)."""
    ahead: list[Deferred[list[bytes]]] = []
    for start in range(0, len(paths), GROUP):
        ahead.append(ensureDeferred(group(paths[start : start + GROUP])))
        if len(ahead) > READ_AHEAD:
            for piece in await ahead.pop(0):
                yield piece
    for pending in ahead:
        for piece in await pending:
            yield piece
