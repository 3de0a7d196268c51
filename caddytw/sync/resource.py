"""The sync HTTP API: ``list``, ``sync``, ``upload``, ``download``, ``metadata``,
``file`` (DELETE), ``whoami``, ``events`` (WebSocket) and ``batch/upload`` /
``batch/download`` (:mod:`caddytw.sync.batch`), as the last segment(s) of the request
path (so the handler works under ``/api/*`` or any other prefix).

Every answer is JSON (``{"error": "..."}`` for failures, a ``ConflictInfo`` for 412 and,
with ``error`` and ``existing_path`` added, for a 409 case/normalisation name clash) or
file bytes; nothing blocks the reactor: the store works in threads, downloads stream
through a producer. Query strings are form-decoded: a ``+`` in a path must be sent as
``%2B``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, BinaryIO, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.http.body import BodyAborted, BodyTooLarge, ThreadReader
from caddytw.http.dispatch import respond
from caddytw.http.request import NOT_DONE_YET, CaddyRequest, transport_of
from caddytw.http.routing import LeafResource
from caddytw.sync import batch_api
from caddytw.sync.access import AccessPolicy, SyncClient
from caddytw.sync.api import (
    DEFAULT_MAX_UPLOAD,
    DEFAULT_PAGE,
    MAX_PAGE,
    MAX_SYNC_BODY,
    READ_METHODS,
    ApiError,
    body_of,
    metadata_headers,
    preconditions,
    query_int,
    query_value,
    report_unexpected,
)
from caddytw.sync.compression import (
    ENCODING,
    MIN_SIZE,
    DecodedTooLarge,
    DecodeError,
    DecodingReader,
    accepts_zstd,
    is_identity,
    is_zstd,
)
from caddytw.sync.core import Conflict, NameClash, Unstorable
from caddytw.sync.delta import DeltaService, delta_name
from caddytw.sync.encoded import CompressedFileProducer, should_compress
from caddytw.sync.events import EventHub
from caddytw.sync.folder import StoreError
from caddytw.sync.protocol import (
    HEADER_CLIENT_ID,
    HEADER_CONTENT_SHA256,
    HEADER_MODIFIED,
    ProtocolError,
    SyncRequest,
    dumps,
    format_etag,
    loads,
    metadata_list_to_json,
    parse_time,
    validate_hash,
)
from caddytw.sync.store import ISyncStore, LocalSyncStore, UploadCancelled
from caddytw.sync.transfer import FileRangeProducer, parse_range

log = Logger()


Endpoint = Callable[[CaddyRequest, "SyncClient | None"], Coroutine[Any, Any, None]]


class FileSyncResource(LeafResource):
    """The ``file_sync`` handler's resource (one per handler config)."""

    def __init__(
        self,
        store: ISyncStore,
        access: AccessPolicy,
        hub: EventHub,
        enable_upload: bool,
        max_upload_size: int = DEFAULT_MAX_UPLOAD,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.store = store
        self.access = access
        self.hub = hub
        self.enable_upload = enable_upload
        self.max_upload_size = max_upload_size
        self.endpoints: dict[str, tuple[tuple[bytes, ...], bool, Endpoint]] = {
            "list": (READ_METHODS, False, self.list),
            "metadata": (READ_METHODS, False, self.metadata),
            "whoami": (READ_METHODS, False, self.whoami),
            "download": (READ_METHODS, False, self.download),
            "sync": ((b"POST",), False, self.sync),
            "upload": ((b"POST", b"PUT"), True, self.upload),
            "file": ((b"DELETE",), True, self.delete),
            "batch/upload": ((b"POST",), True, self.batch_upload),
            "batch/download": ((b"POST",), False, self.batch_download),
        }
        if isinstance(store, LocalSyncStore):  # delta transfers need the local chunk cache
            self.endpoints.update(DeltaService(self, store).endpoints())

    # -- dispatch ----------------------------------------------------------------------

    def render(self, request: CaddyRequest) -> Any:
        name = delta_name(request.decoded_path, self.endpoints)
        segments = request.decoded_path.rstrip("/").rsplit("/", 2)
        if len(segments) == 3 and segments[-2] == "batch":
            name = f"batch/{segments[-1]}"
        try:
            client = self.access.authenticate(request)
            if client is not None:  # who the server takes the caller for: the token's id
                request.setHeader(HEADER_CLIENT_ID.encode("ascii"), client.id.encode("utf-8"))
            # RFC 9110 12.5.3: in a response, the codings accepted in request bodies,
            # so a client knows it may send zstd uploads to this server.
            request.setHeader(b"accept-encoding", ENCODING.encode("ascii"))
            if self.store.problem is not None:  # missing folder or marker: logged once
                raise ApiError(503, self.store.problem)
            if name == "events":
                return self.events(request)
            if name not in self.endpoints:
                raise ApiError(404, f"unknown sync endpoint {name!r}")
            methods, writes, endpoint = self.endpoints[name]
            if request.method not in methods:
                request.setHeader(b"allow", b", ".join(methods))
                raise ApiError(405, f"{name} accepts {', '.join(m.decode() for m in methods)}")
            if writes:
                self.check_write(client)
            if name in ("upload", "batch/upload"):
                self.check_upload_size(request)
        except StoreError as error:
            return respond(request, self.error_body(request, error))
        deferred: Deferred[None] = ensureDeferred(endpoint(request, client))
        deferred.addErrback(self.failed, request)
        deferred.addErrback(lambda f: report_unexpected(f, "answering failed"))
        return NOT_DONE_YET

    def check_upload_size(self, request: CaddyRequest) -> None:
        """413 at once, before a byte of the body is read, for a declared
        ``Content-Length`` over ``max_upload_size``; a body without one (chunked) stops
        being read past the limit (:func:`body_of`), with 413 and nothing kept."""
        declared = (request.getHeader(b"content-length") or b"").strip()
        limit = self.max_upload_size
        if limit and declared.isdigit() and len(declared) <= 20 and int(declared) > limit:
            raise ApiError(413, f"uploads are limited to {limit} bytes")

    def check_write(self, client: SyncClient | None) -> None:
        if not self.enable_upload:
            raise ApiError(403, "uploads are disabled on this server (enable_upload)")
        self.access.check_write(client)

    def origin(self, request: CaddyRequest, client: SyncClient | None) -> str | None:
        if client is not None:
            return client.id
        named = request.header_text(HEADER_CLIENT_ID)
        return named[:200] if named else None

    # -- answers -----------------------------------------------------------------------

    def error_body(self, request: CaddyRequest, error: StoreError) -> bytes:
        request.setResponseCode(error.status)
        if error.status == 401:
            request.setHeader(b"www-authenticate", b'Bearer realm="file_sync"')
        if isinstance(error, Unstorable):
            body = dumps({**error.info.to_json(), "error": error.message})
        elif isinstance(error, NameClash):
            # The ConflictInfo shape, naming the path that is already there.
            extra = {"error": error.message, "existing_path": error.existing}
            body = dumps({**error.info.to_json(), **extra})
        elif isinstance(error, Conflict):
            if error.info.remote_metadata is not None:
                metadata_headers(request, error.info.remote_metadata)
            body = dumps(error.info)
        else:
            body = dumps({"error": error.message})
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        return body

    def send(
        self,
        request: CaddyRequest,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        cache_control: bytes = b"no-store",
    ) -> None:
        if request.client_gone:
            return
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        request.setHeader(b"cache-control", cache_control)
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def failed(self, failure: Failure, request: CaddyRequest) -> None:
        if failure.check(UploadCancelled) or request.client_gone:
            return
        error = failure.value
        if isinstance(error, ProtocolError):
            error = ApiError(400, str(error))
        elif isinstance(error, BodyTooLarge):
            error = ApiError(413, str(error))
        elif isinstance(error, BodyAborted):  # before OSError: it is a ConnectionError
            error = ApiError(400, str(error))
        elif isinstance(error, OSError):
            request_id = report_unexpected(failure, "disk error")
            error = ApiError(500, f"disk error: {error.strerror or error} (request {request_id})")
        elif not isinstance(error, StoreError):
            request_id = report_unexpected(failure, "unexpected error")
            error = ApiError(500, f"internal error (request {request_id})")
        if request.startedWriting:
            transport_of(request).abortConnection()
            return
        body = self.error_body(request, error)
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    # -- endpoints ---------------------------------------------------------------------

    async def list(self, request: CaddyRequest, client: SyncClient | None) -> None:
        since = query_value(request, "since", required=False)
        if since is None:
            entries, index_id, cursor = await self.store.listing()
            request.setHeader(b"x-sync-index-id", index_id.encode("ascii"))
            request.setHeader(b"x-sync-cursor", str(cursor).encode("ascii"))
            self.send(request, 200, dumps(metadata_list_to_json(entries)))
            return
        page = await self.store.changes(
            query_int(request, "since", 0),
            query_value(request, "index_id", required=False),
            query_int(request, "limit", DEFAULT_PAGE, MAX_PAGE) or DEFAULT_PAGE,
            self.origin(request, client),
        )
        self.send(request, 200, dumps(page))

    async def whoami(self, request: CaddyRequest, client: SyncClient | None) -> None:
        """What the caller may do, so a user interface can show a read-only view up front
        instead of letting people try changes that will be refused:
        ``{"client_id": str|null, "read_only": bool, "upload_enabled": bool,
        "can_write": bool}``."""
        read_only = client is not None and client.read_only
        body = {
            "client_id": client.id if client is not None else None,
            "read_only": read_only,
            "upload_enabled": self.enable_upload,
            "can_write": self.enable_upload and not read_only,
        }
        self.send(request, 200, dumps(body))

    async def metadata(self, request: CaddyRequest, client: SyncClient | None) -> None:
        path = query_value(request, "path") or ""
        meta = await self.store.metadata(path)
        if meta is None:
            raise ApiError(404, f"{path!r} does not exist")
        metadata_headers(request, meta)
        self.send(request, 200, dumps(meta))

    async def sync(self, request: CaddyRequest, client: SyncClient | None) -> None:
        with await body_of(request, MAX_SYNC_BODY) as content:
            body = content.read()
        sync_request = SyncRequest.from_json(loads(body))
        if client is not None and sync_request.client_id != client.id:
            # Who you are comes from the token: a body naming another client would
            # move that client's cursor (and consume its pending changes).
            raise ApiError(
                403,
                f"client_id {sync_request.client_id!r} is not this token's client "
                f"{client.id!r} (see the X-Sync-Client answer header)",
            )
        if sync_request.operations:
            self.check_write(client)
        origin = client.id if client is not None else sync_request.client_id
        response = await self.store.apply_sync(sync_request, origin)
        self.send(request, 200, dumps(response))

    async def upload(self, request: CaddyRequest, client: SyncClient | None) -> None:
        path = query_value(request, "path") or ""
        declared = request.header_text(HEADER_CONTENT_SHA256)
        try:
            expected = (
                validate_hash(declared.strip().lower(), HEADER_CONTENT_SHA256)
                if (declared is not None)
                else None
            )
            modified_text = request.header_text(HEADER_MODIFIED)
            modified_ns = None
            if modified_text is not None:
                moment = parse_time(modified_text.strip(), HEADER_MODIFIED)
                modified_ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
        except ProtocolError as error:
            raise ApiError(400, str(error)) from None
        coding = request.header_text("Content-Encoding")
        if not (is_identity(coding) or is_zstd(coding)):
            raise ApiError(415, f"Content-Encoding {coding!r}: only zstd or identity")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        # The handler's own limit rules its route, above or below the server's default
        # max_request_body (0: no limit), as a route's request_body does.
        limit = self.max_upload_size or None
        request.body.limit_to(limit)
        # Streamed straight into the store's staged temp file by one thread (asked for
        # only once the preconditions held): written once, memory flat. A zstd body is
        # decoded on the way (same hash, verify and atomic rename as a plain one); the
        # limit holds for the decoded size too, so a bomb is refused mid-stream and its
        # temp file removed.
        content: Any = ThreadReader(request.body, self.reactor)
        if is_zstd(coding):
            content = DecodingReader(content, limit)
        try:
            meta, status = await self.store.put(
                path,
                cast(BinaryIO, content),
                expected,
                preconditions(request),
                modified_ns,
                self.origin(request, client),
                lambda: bool(gone) or request.client_gone,
            )
        except DecodedTooLarge:
            raise ApiError(413, f"uploads are limited to {limit} bytes (decoded)") from None
        except DecodeError as error:
            raise ApiError(400, f"zstd body: {error}") from None
        metadata_headers(request, meta)
        self.send(request, 201 if status == "created" else 200, dumps(meta))

    async def delete(self, request: CaddyRequest, client: SyncClient | None) -> None:
        path = query_value(request, "path") or ""
        conditions = preconditions(request)
        base = None
        if conditions.if_match is not None and "*" not in conditions.if_match:
            if len(conditions.if_match) != 1:
                raise ApiError(400, "If-Match on DELETE takes one ETag")
            base = conditions.if_match[0]
        entry = await self.store.delete(path, base, self.origin(request, client))
        if entry is None:
            raise ApiError(404, f"{path!r} does not exist")
        self.send(request, 200, dumps(entry.change()))

    async def download(self, request: CaddyRequest, client: SyncClient | None) -> None:
        path = query_value(request, "path") or ""
        source, meta = await self.store.open_file(path)
        if request.client_gone:
            source.close()
            return
        metadata_headers(request, meta)
        request.setHeader(b"accept-ranges", b"bytes")
        request.setHeader(b"cache-control", b"no-cache")
        etag = format_etag(meta.hash)
        if_none_match = request.header_text("If-None-Match")
        if if_none_match is not None and (
            if_none_match.strip() == "*" or etag in [t.strip() for t in if_none_match.split(",")]
        ):
            source.close()
            request.setResponseCode(304)
            request.finish()
            return
        start, length = 0, meta.size
        requested = request.header_text("Range")
        if_range = request.header_text("If-Range")
        if requested is not None and (if_range is None or if_range.strip() == etag):
            chosen = parse_range(requested, meta.size)
            if chosen == "unsatisfiable":
                source.close()
                request.setHeader(b"content-range", f"bytes */{meta.size}".encode("ascii"))
                raise ApiError(416, f"range {requested!r} is outside the {meta.size} bytes")
            if isinstance(chosen, tuple):
                start, length = chosen[0], chosen[1] - chosen[0] + 1
                request.setResponseCode(206)
                request.setHeader(
                    b"content-range", f"bytes {chosen[0]}-{chosen[1]}/{meta.size}".encode("ascii")
                )
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"vary", b"Accept-Encoding")
        if (
            request.code == 200
            and length >= MIN_SIZE
            and accepts_zstd(request.getHeader(b"accept-encoding"))
            and await self.in_thread(should_compress, source, length)
        ):
            if request.method == b"HEAD" or request.client_gone:
                source.close()
                request.setHeader(b"content-encoding", ENCODING.encode("ascii"))
                request.finish()
                return
            await CompressedFileProducer(source, length, request, self.in_thread).begin()
            return
        request.setHeader(b"content-length", str(length).encode("ascii"))
        if request.method == b"HEAD" or length == 0:
            source.close()
            request.finish()
            return
        await FileRangeProducer(source, start, length, request).begin()

    async def batch_upload(self, request: CaddyRequest, client: SyncClient | None) -> None:
        """Many small files in one request: see :mod:`caddytw.sync.batch`."""
        await batch_api.batch_upload(self, request, client)

    async def batch_download(self, request: CaddyRequest, client: SyncClient | None) -> None:
        """Many small files in one answer: see :mod:`caddytw.sync.batch`."""
        await batch_api.batch_download(self, request, client)

    def in_thread(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Blocking file work (samples, compression) off the reactor thread."""
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), work, *args)

    def events(self, request: CaddyRequest) -> Any:
        if request.method != b"GET":
            raise ApiError(405, "events is a WebSocket (GET with Upgrade)")
        upgrade = (request.getHeader(b"upgrade") or b"").lower()
        if upgrade != b"websocket" or request.proto != "HTTP/1.1":
            raise ApiError(426, "events needs a WebSocket upgrade over HTTP/1.1")
        return self.hub.render(request)
