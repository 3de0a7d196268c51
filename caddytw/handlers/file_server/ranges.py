"""``Range: bytes=...`` parsing and the layout of ``multipart/byteranges`` bodies.

Pure functions, no IO: the resource asks which spans of a file to send and how to frame
them; the producer then reads exactly those spans. Semantics follow Go's ``ServeContent``
(what Caddy serves with) except where Go contradicts RFC 9110; those spots say so.
"""

from __future__ import annotations

from dataclasses import dataclass

UNIT_PREFIX = "bytes="
#: More ranges than this in one request are ignored (whole body sent), as Apache's
#: ``MaxRanges`` does: many tiny ranges cost far more in part headers than they save.
MAX_RANGES = 100
#: Digits beyond this are "larger than any file": no int parsing of hostile megabyte numbers.
_MAX_DIGITS = 19
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class ByteRange:
    """``length`` bytes of the representation starting at ``start`` (always ``length > 0``)."""

    start: int
    length: int

    @property
    def end(self) -> int:
        """The last byte's offset (inclusive), as Content-Range writes it."""
        return self.start + self.length - 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class InvalidRange(ValueError):
    """A Range header that does not parse: 416 without ``Content-Range`` (as Go does)."""


class UnsatisfiableRange(InvalidRange):
    """Every range lies outside the representation: 416 with ``Content-Range: bytes */SIZE``."""


def _number(text: str) -> int | None:
    """A non-negative decimal (digits only, as RFC 9110's ``1*DIGIT``), or None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text.lstrip("0")) > _MAX_DIGITS:
        return 1 << 64  # beyond any real size; the caller clamps or rejects
    return int(text)


def parse_range(header: str | None, size: int) -> list[ByteRange]:
    """The satisfiable ranges of ``header`` for a representation of ``size`` bytes.

    An absent or empty header gives ``[]`` (send everything). Raises
    :class:`InvalidRange` for syntax errors and :class:`UnsatisfiableRange` when the
    header parses but no range overlaps the content. Unlike Go, ``bytes=-0`` and any
    range of an empty file are unsatisfiable (RFC 9110 section 14.1.1) instead of
    producing ``Content-Range: bytes 12-11/12``.
    """
    if not header:
        return []
    if not header.startswith(UNIT_PREFIX):
        raise InvalidRange("invalid range")
    ranges: list[ByteRange] = []
    unsatisfiable = False
    for spec in header[len(UNIT_PREFIX) :].split(","):
        spec = spec.strip(_WHITESPACE)
        if not spec:
            continue
        first_text, dash, last_text = spec.partition("-")
        if not dash:
            raise InvalidRange("invalid range")
        first_text, last_text = first_text.strip(_WHITESPACE), last_text.strip(_WHITESPACE)
        if not first_text:
            suffix = _number(last_text)
            if suffix is None:
                raise InvalidRange("invalid range")
            length = min(suffix, size)
            if length <= 0:
                unsatisfiable = True
                continue
            ranges.append(ByteRange(size - length, length))
            continue
        first = _number(first_text)
        if first is None:
            raise InvalidRange("invalid range")
        if last_text:
            last = _number(last_text)
            if last is None or last < first:
                raise InvalidRange("invalid range")
        else:
            last = size - 1
        if first >= size:
            unsatisfiable = True
            continue
        ranges.append(ByteRange(first, min(last, size - 1) - first + 1))
    if not ranges and unsatisfiable:
        raise UnsatisfiableRange("invalid range: failed to overlap")
    return ranges


def worth_honouring(ranges: list[ByteRange], size: int) -> bool:
    """Whether to answer 206 at all: Go ignores ranges adding up to more than the file
    (a sign of an attack or a confused client), and we also cap their number."""
    return bool(ranges) and len(ranges) <= MAX_RANGES and sum(r.length for r in ranges) <= size


@dataclass(frozen=True)
class MultipartLayout:
    """A ``multipart/byteranges`` body: for each range the bytes written before its data,
    then a closing delimiter. ``length`` is the exact Content-Length."""

    content_type: str
    parts: tuple[tuple[bytes, ByteRange], ...]
    trailer: bytes
    length: int


def multipart_layout(
    ranges: list[ByteRange], size: int, content_type: str | None, boundary: str
) -> MultipartLayout:
    """Frame ``ranges`` the way Go's ``mime/multipart`` writer does (CRLF before every
    delimiter but the first, headers in sorted order). Every part names the file's type,
    and an empty ``Content-Type:`` line when it has none: Caddy sets the response's
    type to nil for an unknown extension (so Go does not sniff), and ``ServeContent``
    still writes the field in each part."""
    delimiter = b"--" + boundary.encode("ascii")
    type_line = b"Content-Type: " + (content_type or "").encode() + b"\r\n"
    parts = []
    total = 0
    for index, byte_range in enumerate(ranges):
        head = (
            (b"\r\n" if index else b"")
            + delimiter
            + b"\r\nContent-Range: "
            + byte_range.content_range(size).encode("ascii")
            + b"\r\n"
            + type_line
            + b"\r\n"
        )
        parts.append((head, byte_range))
        total += len(head) + byte_range.length
    trailer = b"\r\n" + delimiter + b"--\r\n"
    return MultipartLayout(
        f"multipart/byteranges; boundary={boundary}", tuple(parts), trailer, total + len(trailer)
    )
