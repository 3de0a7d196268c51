"""Batches of small files on the wire: the framing shared by server and client.

One request carries many files each way, so an initial sync of 10,000 small files costs
a few round trips instead of 10,000. The framing is a stream of entries, each a JSON
header line and then exactly ``size`` raw bytes, closed by an end line that states the
count (a cut stream is therefore always detected)::

    {"path": "a.txt", "size": 5, "sha256": "<hex>", ...}\\n
    hello
    {"path": "b.txt", "size": 0, ...}\\n
    {"end": true, "count": 2}\\n

``POST /api/batch/upload`` (body ``application/x-caddytw-batch``, optionally
``Content-Encoding: zstd`` over the whole stream) — entry header fields:
``path``, ``size``, ``sha256`` (required: verified like ``X-Content-SHA256``),
``if_match`` (the server hash the change is based on) or ``if_none_match: "*"`` (a new
path), optional ``modified`` (RFC 3339). Each entry is stored exactly as
``POST /api/upload`` stores a file (the store's ``put``: staged, verified, atomic,
under the path lock) and gets its own result; one entry's refusal does not stop the
others. Answer ``200``::

    {"results": [{"index": 0, "path": "a.txt", "status": 201,
                  "metadata": FileMetadata},
                 {"index": 1, "path": "b.txt", "status": 412,
                  "error": "...", "conflict": ConflictInfo}]}

``POST /api/batch/download`` (JSON body ``{"paths": ["a.txt", ...]}``, at most
:data:`MAX_ENTRIES`) answers ``200`` with a stream of entries in the same order, headers
``{"path", "status": 200, "size", "sha256", "modified"}`` followed by the bytes, or
``{"path", "status": 404|400|409, "error"}`` without bytes; ``Accept-Encoding: zstd``
compresses the whole stream when it pays. The client verifies each entry's SHA-256.

Both endpoints follow the access rules of their single-file twins (upload needs
``enable_upload`` and a writing client) and the upload limit holds for the decoded
body as a whole and for each entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

CONTENT_TYPE = "application/x-caddytw-batch"
#: Entries in one batch (either way).
MAX_ENTRIES = 10_000
#: Longest header line (a path is at most 4 KiB; the rest is small).
MAX_HEADER = 16 * 1024


class BatchError(ValueError):
    """The batch stream is malformed (bad header, cut short, too many entries)."""


def header_line(fields: dict[str, Any]) -> bytes:
    """One entry's header line."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def end_line(count: int) -> bytes:
    return header_line({"end": True, "count": count})


def _parse_header(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BatchError(f"entry header is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BatchError("entry header is not a JSON object")
    return value


def _size_of(header: dict[str, Any]) -> int:
    size = header.get("size", 0)
    if type(size) is not int or size < 0:
        raise BatchError(f"entry size {size!r} is not a non-negative integer")
    return size


def read_entries(source: BinaryIO, max_entry: int | None = None) -> Iterator[dict[str, Any]]:
    """Headers from a blocking stream, in order; after each one the caller must read
    exactly ``header["size"]`` bytes from ``source`` before asking for the next.
    Raises :class:`BatchError` on bad framing, a cut stream or too many entries."""
    count = 0
    while True:
        line = source.readline(MAX_HEADER + 1)
        if not line:
            raise BatchError("batch stream cut short (no end line)")
        if not line.endswith(b"\n"):
            raise BatchError(f"entry header longer than {MAX_HEADER} bytes or cut short")
        header = _parse_header(line)
        if header.get("end") is True:
            if header.get("count") != count:
                raise BatchError(f"end line says {header.get('count')!r} entries, saw {count}")
            if source.read(1):
                raise BatchError("bytes after the end line")
            return
        count += 1
        if count > MAX_ENTRIES:
            raise BatchError(f"more than {MAX_ENTRIES} entries")
        size = _size_of(header)
        if max_entry is not None and size > max_entry:
            raise BatchError(f"entry {header.get('path')!r}: {size} bytes is over the limit")
        yield header


class EntryParser:
    """Push-side parsing for a streamed batch answer: ``feed`` bytes, get complete
    ``(header, body)`` pairs. Memory: one entry (bounded by ``max_entry``)."""

    def __init__(self, max_entry: int) -> None:
        self.max_entry = max_entry
        self._buffer = bytearray()
        self._header: dict[str, Any] | None = None
        self._size = 0
        self.count = 0
        self.ended = False

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        if self.ended and data:
            raise BatchError("bytes after the end line")
        buffer = self._buffer
        buffer += data
        # Walk the buffer with an offset and drop what was consumed once at the end:
        # deleting each entry from the front moved the rest of a 64 KiB read per entry.
        at = 0
        out: list[tuple[dict[str, Any], bytes]] = []
        try:
            while True:
                if self._header is None:
                    newline = buffer.find(b"\n", at)
                    if newline < 0:
                        if len(buffer) - at > MAX_HEADER:
                            raise BatchError(f"entry header longer than {MAX_HEADER} bytes")
                        return out
                    header = _parse_header(bytes(buffer[at:newline]))
                    at = newline + 1
                    if header.get("end") is True:
                        if header.get("count") != self.count or at != len(buffer):
                            raise BatchError("batch stream: bad end line")
                        self.ended = True
                        return out
                    self._size = _size_of(header)
                    if self._size > self.max_entry:
                        raise BatchError(f"entry of {self._size} bytes is over the limit")
                    self._header = header
                    self.count += 1
                if len(buffer) - at < self._size:
                    return out
                out.append((self._header, bytes(buffer[at : at + self._size])))
                at += self._size
                self._header = None
        finally:
            del buffer[:at]

    def close(self) -> None:
        if not self.ended:
            raise BatchError("batch stream cut short (no end line)")
