"""What every ``file_sync`` endpoint module shares: errors, query and body reading,
preconditions, metadata headers, and :class:`SyncEndpoints` (what the delta and batch
endpoints need of the resource that routes to them).

Kept apart from :mod:`caddytw.sync.resource` so :mod:`caddytw.sync.delta` and
:mod:`caddytw.sync.batch_api` use these without importing the resource that imports them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import datetimeToString

from caddytw.http.body import BodyAborted, BodyTooLarge, collect_file
from caddytw.http.request import CaddyRequest
from caddytw.sync.access import SyncClient
from caddytw.sync.core import Preconditions
from caddytw.sync.folder import StoreError
from caddytw.sync.protocol import (
    HEADER_CONTENT_SHA256,
    FileMetadata,
    format_etag,
    parse_etag,
)
from caddytw.sync.store import ISyncStore

log = Logger()

MAX_SYNC_BODY = 16 * 1024 * 1024
DEFAULT_PAGE = 1000
MAX_PAGE = 10000
MAX_INT_DIGITS = 19
#: Default ``max_upload_size``: 10 GiB.
DEFAULT_MAX_UPLOAD = 10 * 1024**3
READ_METHODS = (b"GET", b"HEAD")


_reported: set[tuple[str, str]] = set()


def report_unexpected(failure: Failure, what: str) -> str:
    """Log an unexpected failure under a new request id (also put in the 500 answer).

    The traceback is logged at error level the first time a kind of failure (its type
    and where it was raised) shows up, later ones in one line: a client repeating a
    request that hits a bug must not fill the log with tracebacks.
    """
    request_id = secrets.token_hex(6)
    frames = failure.frames
    where = f"{frames[-1][1]}:{frames[-1][2]}" if frames else ""
    key = (failure.type.__name__ if failure.type else "?", where)
    if key in _reported:
        log.error(
            "file_sync: {what} (request {request_id}): {error} at {where}, as before",
            what=what,
            request_id=request_id,
            error=failure.getErrorMessage(),
            where=where,
        )
    else:
        _reported.add(key)
        log.error(
            "file_sync: {what} (request {request_id}):\n{traceback}",
            what=what,
            request_id=request_id,
            traceback=failure.getTraceback(),
        )
    return request_id


class ApiError(StoreError):
    """A refused request (same shape as store errors)."""


def query_value(request: CaddyRequest, name: str, required: bool = True) -> str | None:
    values = request.args.get(name.encode("ascii"))
    if not values:
        if required:
            raise ApiError(400, f"missing query parameter {name!r}")
        return None
    try:
        return bytes(values[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"query parameter {name!r} is not UTF-8") from None


def query_int(request: CaddyRequest, name: str, default: int, maximum: int | None = None) -> int:
    text = query_value(request, name, required=False)
    if text is None:
        return default
    # ASCII digits only (``²`` is a digit to str.isdigit, not to int) and no more than
    # a 64-bit counter needs (5,000 digits are refused by int() itself).
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_INT_DIGITS:
        raise ApiError(
            400,
            f"query parameter {name!r} must be a non-negative integer of at most "
            f"{MAX_INT_DIGITS} digits",
        )
    value = int(text)
    return min(value, maximum) if maximum is not None else value


def etag_list(header: str, name: str) -> tuple[str, ...]:
    """``*`` or a list of strong ETags holding content hashes."""
    items = [item.strip() for item in header.split(",") if item.strip()]
    if items == ["*"]:
        return ("*",)
    hashes = []
    for item in items:
        parsed = parse_etag(item)
        if parsed is None:
            raise ApiError(400, f"{name}: {item!r} is not a quoted SHA-256 ETag or *")
        hashes.append(parsed)
    if not hashes:
        raise ApiError(400, f"{name} is empty")
    return tuple(hashes)


def preconditions(request: CaddyRequest) -> Preconditions:
    if_match = request.header_text("If-Match")
    if_none_match = request.header_text("If-None-Match")
    return Preconditions(
        etag_list(if_match, "If-Match") if if_match is not None else None,
        etag_list(if_none_match, "If-None-Match") if if_none_match is not None else None,
    )


async def body_of(request: CaddyRequest, limit: int | None = None) -> BinaryIO:
    """The whole request body in a rewound temporary file, read only now (after
    ``render`` authenticated the request, so a refused client never gets ``100
    Continue`` and nothing of its body is stored); 413 past ``limit`` or the server's
    body limit."""
    try:
        return cast(BinaryIO, await collect_file(request.body, limit))
    except BodyTooLarge as error:
        raise ApiError(413, str(error)) from None
    except BodyAborted as error:
        raise ApiError(400, str(error)) from None


def metadata_headers(request: CaddyRequest, meta: FileMetadata) -> None:
    if not meta.is_directory:
        request.setHeader(b"etag", format_etag(meta.hash).encode("ascii"))
        request.setHeader(HEADER_CONTENT_SHA256.encode("ascii"), meta.hash.encode("ascii"))
    request.setHeader(b"last-modified", datetimeToString(meta.modified.timestamp()))


class SyncEndpoints(Protocol):
    """The part of :class:`caddytw.sync.resource.FileSyncResource` that the delta and
    batch endpoints use."""

    @property
    def store(self) -> ISyncStore: ...

    @property
    def max_upload_size(self) -> int: ...

    def origin(self, request: CaddyRequest, client: SyncClient | None) -> str | None: ...

    def send(
        self,
        request: CaddyRequest,
        status: int,
        body: bytes,
        content_type: bytes = ...,
        cache_control: bytes = ...,
    ) -> None: ...

    def in_thread(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]: ...
