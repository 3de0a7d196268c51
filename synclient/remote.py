"""The ``file_sync`` HTTP API as seen from the client (treq), plus the events WebSocket.

Shapes come from :mod:`caddytw.sync.protocol`, shared with the server. Downloads stream
into a hidden temp file beside the target while hashing; the temp name carries the first
16 hex digits of the expected hash so an interrupted download of the same bytes resumes
with ``Range``. Uploads stream the file and state what they replace (``If-Match`` with
the server's hash, or ``If-None-Match: *`` for a new path); a refusal comes back as
:class:`Stale` carrying the server's current metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from caddytw.sync.compression import (
    ENCODING,
    MIN_SIZE,
    DecodeError,
    Decoder,
    accepts_zstd,
    compress,
    compressible,
    file_compressible,
    is_identity,
    is_zstd,
)
from caddytw.sync.localfs import temp_name
from caddytw.sync.protocol import (
    HEADER_CLIENT_ID,
    HEADER_CONTENT_SHA256,
    HEADER_MODIFIED,
    ChangesPage,
    ConflictInfo,
    FileMetadata,
    ProtocolError,
    SyncOperation,
    SyncRequest,
    SyncResponse,
    format_etag,
    format_time,
    loads,
    metadata_list_from_json,
)
from synclient.bodywriter import BodyWriter, TooLong

CHUNK = 1 << 16
#: Bytes read from the socket at a time while a large download's body arrives.
READ_SIZE = 1 << 20

T = TypeVar("T")


class RemoteError(Exception):
    """The server answered something the client cannot use."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(RemoteError):
    """No connection to the server (refused, DNS, reset)."""


class FolderUnavailable(Unreachable):
    """503: the server is up but cannot serve its folder (root or marker missing, e.g.
    a disk not mounted). Like :class:`Unreachable`, nothing can be decided this pass."""


class AuthFailed(RemoteError):
    """401/403: the token is missing or wrong."""


class Stale(RemoteError):
    """412: the server's version is not the one the change was based on."""

    def __init__(self, info: ConflictInfo | None) -> None:
        super().__init__("precondition failed", 412)
        self.info = info

    @property
    def current(self) -> FileMetadata | None:
        return self.info.remote_metadata if self.info else None


class NotFound(RemoteError):
    pass


class BadAnswer(RemoteError):
    """The server answered 2xx with something that is not a valid answer (bad JSON, a
    missing or ill-typed field, no result for an operation): nothing is decided on it."""


class HashMismatch(RemoteError):
    pass


def download_temp(target: Path, expected_hash: str) -> Path:
    """The resumable temp file for ``target``'s download of ``expected_hash``."""
    return target.with_name(temp_name(target.name, expected_hash[:16]))


class Remote:
    """One server. ``reactor=None`` means the global reactor (imported lazily)."""

    def __init__(
        self,
        server: str,
        client_id: str,
        token: str | None = None,
        reactor: Any = None,
        timeout: float = 30.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        import treq
        from twisted.web.client import Agent

        self.reactor = reactor
        self.base = server.rstrip("/")
        self.client_id = client_id
        self.token = token
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 8
        self.pool.retryAutomatically = False
        self.agent = Agent(reactor, pool=self.pool)
        self.http = treq.client.HTTPClient(self.agent)
        #: zstd on the wire: downloads ask for it; uploads use it once the server said
        #: it takes it (``Accept-Encoding: zstd`` in any answer). ``False`` turns both off.
        self.compression = True
        self.server_takes_zstd = False
        #: Small files travel in batches (``False``: one request each, as before).
        self.batches = True
        from synclient.batch import SmallFiles

        self.small = SmallFiles(self, reactor)
        #: The most bytes a large download ever had waiting for its writer thread.
        self.writer_peak = 0

    def close(self) -> Deferred[None]:
        return self.pool.closeCachedConnections()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {HEADER_CLIENT_ID: self.client_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if extra:
            headers.update(extra)
        return headers

    def url(self, endpoint: str, **query: str | int) -> str:
        text = f"{self.base}/api/{endpoint}"
        if query:
            text += "?" + urlencode({k: str(v) for k, v in query.items()}, quote_via=quote)
        return text

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return await self.http.request(method, url, timeout=self.timeout, **kwargs)
        except (ConnectionRefusedError, ConnectError, DNSLookupError, ResponseFailed) as error:
            raise Unreachable(f"cannot reach {self.base}: {error}") from error

    async def _get(self, url: str, extra: dict[str, str] | None = None) -> Any:
        """A GET straight through the agent, its body unread: for the per-file
        downloads, where treq's URL parsing (hyperlink, IDNA), cookie, redirect and
        decoder layers cost more than the request itself. Same errors as _request."""
        try:
            target = url.encode("ascii")
        except UnicodeEncodeError:  # an IDN host: let treq encode it
            return await self._request("GET", url, headers=self.headers(extra), unbuffered=True)
        from twisted.web.http_headers import Headers

        headers = Headers({name: [value] for name, value in self.headers(extra).items()})
        pending = self.agent.request(b"GET", target, headers)
        timer = self.reactor.callLater(self.timeout, pending.cancel)
        try:
            return await pending
        except (ConnectionRefusedError, ConnectError, DNSLookupError, ResponseFailed) as error:
            raise Unreachable(f"cannot reach {self.base}: {error}") from error
        finally:
            if timer.active():
                timer.cancel()

    async def _check(self, response: Any, what: str) -> None:
        """Raise the right error for a non-2xx answer (reads its body)."""
        import treq

        code = response.code
        if not self.server_takes_zstd and self.compression:
            offered = response.headers.getRawHeaders("accept-encoding") or []
            self.server_takes_zstd = accepts_zstd(", ".join(offered))
        if 200 <= code < 300:
            return
        body = await treq.content(response)
        text = body.decode("utf-8", "replace").strip()[:300]
        if code in (401, 403):
            raise AuthFailed(f"{what}: the server refused the token ({code}) {text}", code)
        if code == 404:
            raise NotFound(f"{what}: not found", code)
        if code == 503:
            raise FolderUnavailable(f"the server cannot serve its folder: {_reason(body)}", code)
        if code == 412:
            try:
                raise Stale(ConflictInfo.from_json(loads(body)))
            except ProtocolError:
                raise Stale(None) from None
        raise RemoteError(f"{what}: HTTP {code} {text}", code)

    async def _json(
        self, method: str, url: str, what: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        response = await self._request(method, url, headers=headers or self.headers(), **kwargs)
        await self._check(response, what)
        named = response.headers.getRawHeaders(HEADER_CLIENT_ID)
        if named and self.token:  # with a token the server names the client: use its id
            self.client_id = named[0]
        try:
            return loads(await response.content())
        except ProtocolError as error:
            raise BadAnswer(f"{what}: the server's answer is not JSON: {error}") from None

    # -- listings -----------------------------------------------------------------------

    async def list_all(self) -> list[FileMetadata]:
        data = await self._json("GET", self.url("list"), "list")
        return _parsed("list", metadata_list_from_json, data)

    async def changes(self, since: int, index_id: str, limit: int = 1000) -> ChangesPage:
        url = self.url("list", since=since, index_id=index_id, limit=limit)
        return _parsed("list changes", ChangesPage.from_json, await self._json("GET", url, "list"))

    async def metadata(self, path: str) -> FileMetadata | None:
        try:
            data = await self._json("GET", self.url("metadata", path=path), f"metadata {path}")
        except NotFound:
            return None
        meta = _parsed(f"metadata {path}", FileMetadata.from_json, data)
        if meta.path != path:
            raise BadAnswer(f"metadata {path}: the answer is about {meta.path!r}")
        return meta

    async def sync(self, operations: list[SyncOperation]) -> SyncResponse:
        body = SyncRequest(tuple(operations), self.client_id).to_json()
        data = await self._json(
            "POST",
            self.url("sync"),
            "sync",
            data=json.dumps(body).encode(),
            headers=self.headers({"Content-Type": "application/json"}),
        )
        response = _parsed("sync", SyncResponse.from_json, data)
        # Every operation needs its own result: an answer that does not say what became
        # of an operation must not be read as "applied" (or as anything else).
        indexes = [r.index for r in response.results]
        if indexes != list(range(len(operations))):
            raise BadAnswer(
                f"sync: the answer has results for operations {indexes[:10]},"
                f" expected one for each of the {len(operations)} sent"
            )
        return response

    # -- transfers ----------------------------------------------------------------------

    def _upload_headers(
        self, sha256: str, expect: str | None, mtime: float | None
    ) -> dict[str, str]:
        extra = {HEADER_CONTENT_SHA256: sha256, "Content-Type": "application/octet-stream"}
        if expect is None:
            extra["If-None-Match"] = "*"
        else:
            extra["If-Match"] = format_etag(expect)
        if mtime is not None:
            from datetime import UTC, datetime

            extra[HEADER_MODIFIED] = format_time(datetime.fromtimestamp(mtime, UTC))
        return extra

    async def _uploaded(self, response: Any, path: str) -> FileMetadata | None:
        await self._check(response, f"upload {path}")
        body = await response.content()
        try:
            return FileMetadata.from_json(loads(body))
        except ProtocolError:
            return None

    async def upload(
        self,
        path: str,
        source: Path,
        sha256: str,
        expect: str | None,
        mtime: float | None = None,
    ) -> FileMetadata | None:
        """Stream ``source`` to ``path``. ``expect`` is the server hash it replaces, or
        ``None`` for a path the server must not have. Returns the new metadata if the
        server sent it."""
        from twisted.web.client import FileBodyProducer

        extra = self._upload_headers(sha256, expect, mtime)
        with os.fdopen(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            producer: Any = FileBodyProducer(handle, readSize=CHUNK)
            if await self._compress_upload(source, size):
                from synclient.compressed import CompressedBodyProducer

                extra["Content-Encoding"] = ENCODING
                producer = CompressedBodyProducer(handle, size, self.reactor)
            response = await self._request(
                "POST", self.url("upload", path=path), headers=self.headers(extra), data=producer
            )
            return await self._uploaded(response, path)

    async def upload_bytes(
        self, path: str, data: bytes, sha256: str, expect: str | None, mtime: float | None
    ) -> FileMetadata | None:
        """A small file's bytes (already read and checked against ``sha256``): batched
        with others when the server has batches, else one request."""
        if self.batches:
            return await self.small.upload(path, data, sha256, expect, mtime)
        return await self.upload_bytes_one(path, data, sha256, expect, mtime)

    async def upload_bytes_one(
        self, path: str, data: bytes, sha256: str, expect: str | None, mtime: float | None
    ) -> FileMetadata | None:
        extra = self._upload_headers(sha256, expect, mtime)
        if self.compression and self.server_takes_zstd and compressible(data[:65536]):
            data = compress(data)
            extra["Content-Encoding"] = ENCODING
        response = await self._request(
            "POST", self.url("upload", path=path), headers=self.headers(extra), data=data
        )
        return await self._uploaded(response, path)

    async def _compress_upload(self, source: Path, size: int) -> bool:
        """zstd for this upload: the server takes it and a sample compresses."""
        if not (self.compression and self.server_takes_zstd and size >= MIN_SIZE):
            return False
        from twisted.internet.threads import deferToThreadPool

        pool = self.reactor.getThreadPool()
        try:
            return bool(await deferToThreadPool(self.reactor, pool, file_compressible, source))
        except OSError:
            return False

    def _accept(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """``extra`` plus ``Accept-Encoding: zstd`` for a whole-file download."""
        headers = dict(extra or {})
        if self.compression and "Range" not in headers:
            headers["Accept-Encoding"] = ENCODING
        return headers

    async def fetch(
        self,
        path: str,
        expected_hash: str,
        expected_size: int,
        on_bytes: Callable[[int], None] | None = None,
        verify: bool = True,
    ) -> bytes:
        """A small file's verified bytes: batched with others when the server has
        batches (see :mod:`synclient.batch`), else :meth:`fetch_one`. ``verify=False``
        may return a batch entry unchecked: the caller must check its SHA-256 against
        ``expected_hash`` before the bytes become visible (the applier does it in its
        install thread, keeping 10,000 hashes off the reactor thread)."""
        if not (self.batches and self.small.enabled):
            return await self.fetch_one(path, expected_hash, expected_size, on_bytes)
        body = await self.small.fetch(path, expected_hash, expected_size, verify)
        if on_bytes is not None:
            on_bytes(len(body))
        return body

    async def fetch_one(
        self,
        path: str,
        expected_hash: str,
        expected_size: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> bytes:
        """A small file's bytes, in memory, verified against ``expected_hash`` (the
        caller writes them out, in the thread hop it needs anyway: no temp file is
        created on the reactor thread for each of many small files)."""
        response = await self._get(self.url("download", path=path), self._accept())
        await self._check(response, f"download {path}")
        chunks: list[bytes] = []
        received = 0

        def keep(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)
            if received > expected_size:
                raise HashMismatch(f"download {path}: more than the {expected_size} bytes listed")
            chunks.append(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))

        await _collect(response, keep, path, expected_size)
        body = b"".join(chunks)
        if hashlib.sha256(body).hexdigest() != expected_hash:
            raise HashMismatch(f"download {path}: content does not match its hash")
        return body

    async def download(
        self,
        path: str,
        target: Path,
        expected_hash: str,
        expected_size: int,
        on_bytes: Callable[[int], None] | None = None,
        sync: bool = True,
    ) -> Path:
        """Fetch ``path`` into its temp file beside ``target`` (whose folder must exist),
        resuming a partial one;
        verify the SHA-256 and, unless ``sync`` is false (the caller then fsyncs it in
        the thread hop it needs anyway), fsync. Returns the temp file (the caller
        renames it)."""
        from twisted.internet.threads import deferToThread

        temp = download_temp(target, expected_hash)
        digest = hashlib.sha256()
        offset = 0
        if temp.exists():
            offset = temp.stat().st_size
            if 0 < offset <= expected_size:
                await deferToThread(_hash_prefix, temp, digest, offset)
            else:
                offset = 0
        extra = {"Range": f"bytes={offset}-"} if 0 < offset < expected_size else {}
        if offset >= expected_size and expected_size > 0 and digest.hexdigest() == expected_hash:
            return temp  # a previous run fetched everything but did not rename
        response = await self._get(self.url("download", path=path), self._accept(extra))
        await self._check(response, f"download {path}")
        if response.code != 206 or not _range_starts_at(response, offset):
            offset = 0
            digest = hashlib.sha256()
        handle = open(temp, "r+b" if offset else "wb")  # noqa: SIM115 - closed below
        writer: BodyWriter | None = None
        try:
            handle.seek(offset)
            handle.truncate()
            # Written and hashed by a thread of its own while the body arrives (see
            # synclient.bodywriter); the reactor thread only receives.
            writer = BodyWriter(self.reactor, handle, digest, expected_size - offset, on_bytes)
            try:
                await _collect(response, writer.write, path, expected_size, writer)
                await writer.close(sync)
            finally:
                self.writer_peak = max(self.writer_peak, writer.peak)
        except BaseException as error:
            if writer is not None:
                await writer.abandon()
            handle.close()
            if writer is not None and writer.error is not None:
                # The disk refused (full, I/O error): no partial file is left behind,
                # and the error is the disk's, not the connection's it caused.
                temp.unlink(missing_ok=True)
                if error is not writer.error:
                    raise writer.error from None
            raise
        handle.close()
        if digest.hexdigest() != expected_hash:
            temp.unlink(missing_ok=True)
            raise HashMismatch(f"download {path}: content does not match its hash")
        return temp


async def _collect(
    response: Any,
    write: Callable[[bytes], None],
    path: str,
    expected_size: int,
    writer: BodyWriter | None = None,
) -> None:
    """The body into ``write``, decoded when the server sent zstd (never more than
    ``expected_size`` decoded bytes: a bomb stops at once). ``writer`` is given the
    body's transport, to pause it while the writer catches up."""
    coding = [c for c in response.headers.getRawHeaders("content-encoding") or [] if c.strip()]
    decoder = None
    if coding and not (len(coding) == 1 and is_identity(coding[0])):
        if not is_zstd(coding[-1]) or len(coding) > 1:
            raise BadAnswer(f"download {path}: unexpected Content-Encoding {coding!r}")
        decoder = Decoder(write, expected_size)
    body = _Body(decoder.write if decoder is not None else write, writer)
    response.deliverBody(body)
    finished = body.finished
    assert finished is not None
    try:
        await finished
        if decoder is not None:
            decoder.close()
    except ResponseFailed as error:
        raise Unreachable(f"download {path} interrupted: {error}") from error
    except DecodeError as error:
        raise HashMismatch(f"download {path}: bad zstd body: {error}") from None
    except TooLong as error:
        raise HashMismatch(f"download {path}: {error}") from None


class _Body(Protocol):
    """A response body into a callable (as ``treq.collect``), handing the body's
    transport to a :class:`BodyWriter` for flow control. An error raised by the callable
    drops the connection and fails ``finished`` with it."""

    def __init__(self, write: Callable[[bytes], None], writer: BodyWriter | None) -> None:
        self.write = write
        #: Fires when the body is complete; cancelling it drops the connection.
        self.finished: Deferred[None] | None = Deferred(self._cancel)
        self.writer = writer

    def _cancel(self, _: Deferred[None]) -> None:
        self.finished = None
        self._drop()

    def _drop(self) -> None:
        """Stop receiving: the rest of the body is not wanted (the connection closes)."""
        producer: Any = self.transport  # the body's transport is a push producer
        if producer is not None:
            producer.stopProducing()

    def connectionMade(self) -> None:
        if self.writer is not None:
            self.writer.attach(self.transport)
            # Read the socket in up to 1 MiB at a time, not Twisted's 64 KiB: a large
            # body then costs a sixteenth of the reactor turns and parser calls.
            connection = getattr(self.transport, "_producer", None)
            if connection is not None and getattr(connection, "bufferSize", 0) < READ_SIZE:
                connection.bufferSize = READ_SIZE

    def dataReceived(self, data: bytes) -> None:
        if self.finished is None:
            return
        try:
            self.write(data)
        except BaseException:
            finished, self.finished = self.finished, None
            self._drop()
            finished.errback(Failure())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished is None:
            return
        finished, self.finished = self.finished, None
        if reason.check(ResponseDone, PotentialDataLoss):
            finished.callback(None)
        else:
            finished.errback(reason)


def _parsed(what: str, parse: Callable[[Any], T], data: Any) -> T:
    """``parse(data)``, with a :class:`ProtocolError` turned into :class:`BadAnswer`."""
    try:
        return parse(data)
    except ProtocolError as error:
        raise BadAnswer(f"{what}: invalid answer from the server: {error}") from None


def _reason(body: bytes) -> str:
    """The ``error``/``reason`` of a JSON error body, else its text (shortened)."""
    try:
        data = loads(body)
    except ProtocolError:
        data = None
    if isinstance(data, dict):
        for key in ("reason", "error", "message"):
            if isinstance(data.get(key), str):
                return data[key][:300]
    return body.decode("utf-8", "replace").strip()[:300] or "HTTP 503"


def _hash_prefix(path: Path, digest: Any, length: int) -> None:
    with open(path, "rb") as handle:
        left = length
        while left > 0 and (chunk := handle.read(min(left, 1 << 20))):
            digest.update(chunk)
            left -= len(chunk)


def _range_starts_at(response: Any, offset: int) -> bool:
    values = response.headers.getRawHeaders("content-range") or []
    return bool(values) and values[0].startswith(f"bytes {offset}-")


def events_url(server: str) -> str:
    parts = urlsplit(server.rstrip("/"))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path}/api/events"
