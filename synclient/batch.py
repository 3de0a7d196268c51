"""Small files in batches: many concurrent single-file calls become a few requests.

The applier starts many small transfers at once; each asks this coalescer instead of
the server. Like Nagle's algorithm: with fewer than :data:`IN_FLIGHT` batch requests
of a kind under way, what was asked for in this reactor turn goes out at once (a lone
file waits for nothing); otherwise requests pile up (to :data:`MAX_ENTRIES` /
:data:`MAX_BYTES`) until one comes back. They go out as one ``batch/upload`` or
``batch/download`` (see :mod:`caddytw.sync.batch`), and each caller gets its own
entry's result, so the applier's per-file logic (verify, install, record) is unchanged.
A server without the batch endpoints (404/405) turns batching off for the session and
every call falls back to the single-file request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from caddytw.sync.batch import CONTENT_TYPE, BatchError, EntryParser, end_line, header_line
from caddytw.sync.compression import ENCODING, compress, compressible
from caddytw.sync.protocol import ConflictInfo, FileMetadata, ProtocolError, format_time, loads

if TYPE_CHECKING:
    from synclient.remote import Remote

IN_FLIGHT = 2
MAX_ENTRIES = 1000
MAX_BYTES = 8 * 1024 * 1024
#: Largest entry the server takes in a batch (``caddytw.sync.batch_api``).
MAX_ENTRY = 1024 * 1024


@dataclass
class _Queue:
    items: list[Any] = field(default_factory=list)
    size: int = 0
    call: Any = None
    in_flight: int = 0


@dataclass
class _Download:
    path: str
    hash: str
    size: int
    done: Deferred[bytes]
    verify: bool = True


@dataclass
class _Upload:
    path: str
    data: bytes
    sha256: str
    expect: str | None
    mtime: float | None
    done: Deferred[FileMetadata | None]


class SmallFiles:
    """The coalescer for one :class:`~synclient.remote.Remote`."""

    def __init__(self, remote: Remote, reactor: Any) -> None:
        self.remote = remote
        self.reactor = reactor
        self.enabled = True
        self._down = _Queue()
        self._up = _Queue()
        self.requests = 0

    # -- public -----------------------------------------------------------------------

    def fetch(
        self, path: str, expected_hash: str, size: int, verify: bool = True
    ) -> Deferred[bytes]:
        """The entry's bytes; ``verify=False`` leaves checking them against
        ``expected_hash`` to the caller (who does it off the reactor thread)."""
        done: Deferred[bytes] = Deferred()
        item = _Download(path, expected_hash, size, done, verify)
        self._add(self._down, item, size, self._send_down)
        return done

    def upload(
        self, path: str, data: bytes, sha256: str, expect: str | None, mtime: float | None
    ) -> Deferred[FileMetadata | None]:
        done: Deferred[FileMetadata | None] = Deferred()
        item = _Upload(path, data, sha256, expect, mtime, done)
        self._add(self._up, item, len(data), self._send_up)
        return done

    # -- queueing ---------------------------------------------------------------------

    def _add(self, queue: _Queue, item: Any, size: int, send: Any) -> None:
        queue.items.append(item)
        queue.size += size
        if len(queue.items) >= MAX_ENTRIES or queue.size >= MAX_BYTES:
            self._flush(queue, send)
        else:
            self._soon(queue, send)

    def _soon(self, queue: _Queue, send: Any) -> None:
        if queue.items and queue.call is None and queue.in_flight < IN_FLIGHT:
            queue.call = self.reactor.callLater(0, self._flush, queue, send)

    def _flush(self, queue: _Queue, send: Any) -> None:
        if queue.call is not None and queue.call.active():
            queue.call.cancel()
        queue.call = None
        items, queue.items, queue.size = queue.items, [], 0
        if not items:
            return
        queue.in_flight += 1

        def over(_: object) -> None:
            queue.in_flight -= 1
            self._soon(queue, send)

        Deferred.fromCoroutine(self._run(send, items)).addBoth(over)

    async def _run(self, send: Any, items: list[Any]) -> None:
        try:
            await send(items)
        except Exception as error:  # the whole request failed: every entry says so
            from twisted.python.failure import Failure

            failure = Failure(error)
            for item in items:
                if not item.done.called:
                    item.done.errback(failure)

    # -- downloads --------------------------------------------------------------------

    async def _send_down(self, items: list[_Download]) -> None:
        from synclient.remote import HashMismatch

        if not self.enabled:
            await self._singles_down(items)
            return
        entries = await self.download_many([item.path for item in items])
        if entries is None:
            await self._singles_down(items)
            return
        for item, entry in zip(items, entries, strict=True):
            if isinstance(entry, Exception):
                item.done.errback(entry)
            elif item.verify and hashlib.sha256(entry).hexdigest() != item.hash:
                item.done.errback(
                    HashMismatch(f"download {item.path}: content does not match its hash")
                )
            else:
                item.done.callback(entry)

    async def download_many(self, paths: list[str]) -> list[bytes | Exception] | None:
        """One ``batch/download`` request for ``paths``: per path its entry's bytes
        (*not* checked against any hash: the caller must, before they become visible)
        or the exception the single-file request would have raised. ``None``: the server
        has no batch endpoints (batching is then off for the session). A broken answer
        raises (:class:`~synclient.remote.BadAnswer`): no entry of it is used."""
        from synclient.remote import BadAnswer, RemoteError, _collect

        remote = self.remote
        body = json.dumps({"paths": paths}).encode()
        headers = remote.headers({"Content-Type": "application/json"})
        if remote.compression:
            headers["Accept-Encoding"] = ENCODING
        response = await remote._request(
            "POST", remote.url("batch/download"), headers=headers, data=body, unbuffered=True
        )
        self.requests += 1
        if response.code in (404, 405):
            await response.content()
            self.enabled = False
            return None
        await remote._check(response, "batch download")
        parser = EntryParser(MAX_ENTRY)
        out: list[bytes | Exception] = []

        def entries(data: bytes) -> None:
            for header, payload in parser.feed(data):
                if len(out) >= len(paths):
                    raise BatchError("more entries than paths asked for")
                path = paths[len(out)]
                if header.get("path") != path:
                    raise BatchError(f"entry for {header.get('path')!r}, expected {path!r}")
                if header.get("status") != 200:
                    out.append(_entry_error(path, header, "download"))
                else:
                    out.append(payload)

        try:
            await _collect(response, entries, "(batch)", MAX_BYTES * 4 + len(paths) * 20_000)
            parser.close()
        except BatchError as error:
            raise BadAnswer(f"batch download: {error}") from None
        except RemoteError:
            raise
        if len(out) != len(paths):
            raise BadAnswer("batch download: fewer entries than paths asked for")
        return out

    async def _singles_down(self, items: list[_Download]) -> None:
        for item in items:
            try:
                item.done.callback(await self.remote.fetch_one(item.path, item.hash, item.size))
            except Exception as error:
                item.done.errback(error)

    # -- uploads ----------------------------------------------------------------------

    async def _send_up(self, items: list[_Upload]) -> None:
        from synclient.remote import BadAnswer

        if not self.enabled:
            await self._singles_up(items)
            return
        remote = self.remote
        parts = []
        for item in items:
            fields: dict[str, Any] = {"path": item.path, "size": len(item.data)}
            fields["sha256"] = item.sha256
            if item.expect is None:
                fields["if_none_match"] = "*"
            else:
                fields["if_match"] = item.expect
            if item.mtime is not None:
                fields["modified"] = format_time(datetime.fromtimestamp(item.mtime, UTC))
            parts.append(header_line(fields))
            parts.append(item.data)
        parts.append(end_line(len(items)))
        body = b"".join(parts)
        headers = remote.headers({"Content-Type": CONTENT_TYPE})
        if remote.compression and remote.server_takes_zstd and compressible(body[:65536]):
            from twisted.internet.threads import deferToThreadPool

            pool = self.reactor.getThreadPool()
            body = await deferToThreadPool(self.reactor, pool, compress, body)
            headers["Content-Encoding"] = ENCODING
        response = await remote._request(
            "POST", remote.url("batch/upload"), headers=headers, data=body
        )
        self.requests += 1
        if response.code in (404, 405):
            await response.content()
            self.enabled = False
            await self._singles_up(items)
            return
        await remote._check(response, "batch upload")
        try:
            results = loads(await response.content())["results"]
            by_index = {r["index"]: r for r in results}
        except (ProtocolError, KeyError, TypeError) as error:
            raise BadAnswer(f"batch upload: invalid answer: {error}") from None
        for index, item in enumerate(items):
            result = by_index.get(index)
            if result is None or result.get("path") != item.path:
                item.done.errback(BadAnswer(f"batch upload: no result for {item.path}"))
            elif result.get("status") in (200, 201):
                try:
                    item.done.callback(FileMetadata.from_json(result.get("metadata")))
                except ProtocolError:
                    item.done.callback(None)
            else:
                item.done.errback(_entry_error(item.path, result, "upload"))

    async def _singles_up(self, items: list[_Upload]) -> None:
        for item in items:
            try:
                meta = await self.remote.upload_bytes_one(
                    item.path, item.data, item.sha256, item.expect, item.mtime
                )
                item.done.callback(meta)
            except Exception as error:
                item.done.errback(error)


def _entry_error(path: str, result: dict[str, Any], what: str) -> Exception:
    """The exception the single-file request would have raised for this status."""
    from synclient.remote import NotFound, RemoteError, Stale

    status = result.get("status")
    message = str(result.get("error") or "")[:300]
    if status == 412:
        try:
            return Stale(ConflictInfo.from_json(result.get("conflict")))
        except ProtocolError:
            return Stale(None)
    if status == 404:
        return NotFound(f"{what} {path}: not found", 404)
    code = status if isinstance(status, int) else 0
    return RemoteError(f"{what} {path}: HTTP {code} {message}", code)
