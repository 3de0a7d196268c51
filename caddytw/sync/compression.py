"""zstd on the wire: streaming encode/decode with flat memory, and "is it worth it".

Shared by the server (``file_sync``) and the client (``synclient``), for whole-file
transfers, batches and chunk transfers alike, so there is one place that knows how a
body is compressed and how a hostile one is refused.

Memory stays flat on both sides:

- :class:`Encoder` wraps a zstd compression context whose window is a few MiB; each
  :meth:`Encoder.encode` call returns what is ready, so a caller streams any size.
- :class:`Decoder` is fed compressed bytes as they arrive and hands decoded bytes to a
  sink. A zstd "bomb" expands 8 KB into 256 MiB, so a decoder that returns everything
  a piece of input yields can be made to allocate gigabytes. This one walks the frame's
  block headers itself (cheap: it never looks inside a block) and feeds the zstd
  context so that each call completes at most one block; a block decodes to at most
  128 KiB, so no call produces more than that. The same walk tells exactly where the
  frame ends, so a truncated stream or trailing garbage is an error rather than a
  silently short file, and the decoded total is checked against ``limit`` as it grows,
  so a caller can refuse a bomb (413) before it reaches the disk.

The hash the protocol speaks of (ETag, ``X-Content-SHA256``, ``If-Match``) is always
the SHA-256 of the identity bytes; compression is only how they travel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

import zstandard

#: The ``Content-Encoding`` / ``Accept-Encoding`` token.
ENCODING = "zstd"
#: Chosen by measurement (``bench/sync_transfer.py``, the JSON log lines it sends): level 1
#: packs them to 18% of their size, level 3 to 19%, level 6 to 18%, while level 1
#: compresses up to 2.5x faster than 3 (600 vs 230 MB/s on a quiet core of the dev box;
#: about equal under heavy load) and 3-6x faster than 6. On loopback or a LAN the CPU is
#: the cost, not the bytes, so the fastest level that keeps text well under 30% wins.
LEVEL = 1
#: Largest window a :class:`Decoder` accepts (bounds its memory; level 3 uses 2 MiB,
#: level 19 uses 8 MiB).
MAX_WINDOW = 8 * 1024 * 1024
#: zstd's Block_Maximum_Size: what one block can decode to.
MAX_BLOCK = 128 * 1024
#: How much of a file :func:`compressible` looks at.
SAMPLE_SLICE = 16 * 1024
#: Compress only when the sample shrinks below this fraction of its size.
WORTH_RATIO = 0.9
#: Below this size, compression saves too little to pay for itself.
MIN_SIZE = 512

_MAGIC = b"\x28\xb5\x2f\xfd"


class DecodeError(ValueError):
    """The compressed stream is malformed, truncated or followed by trailing bytes."""


class DecodedTooLarge(DecodeError):
    """The decoded bytes exceed the caller's limit (a zstd bomb, or a lying sender)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"decoded size exceeds {limit} bytes")
        self.limit = limit


def accepts_zstd(accept_encoding: str | bytes | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows zstd (``q=0`` refuses it).

    ``*`` counts too, as RFC 9110 says, unless zstd itself is listed with ``q=0``.
    """
    if not accept_encoding:
        return False
    if isinstance(accept_encoding, bytes):
        accept_encoding = accept_encoding.decode("latin-1")
    star: bool | None = None
    for item in accept_encoding.split(","):
        token, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        token = token.strip().lower()
        if token == ENCODING:
            return q > 0
        if token == "*":
            star = q > 0
    return bool(star)


def is_zstd(content_encoding: str | bytes | None) -> bool:
    """Whether a ``Content-Encoding`` value is exactly zstd (one coding, nothing else)."""
    if content_encoding is None:
        return False
    if isinstance(content_encoding, bytes):
        content_encoding = content_encoding.decode("latin-1")
    return content_encoding.strip().lower() == ENCODING


def is_identity(content_encoding: str | bytes | None) -> bool:
    """Whether a ``Content-Encoding`` value means "not encoded"."""
    if content_encoding is None:
        return True
    if isinstance(content_encoding, bytes):
        content_encoding = content_encoding.decode("latin-1")
    return content_encoding.strip().lower() in ("", "identity")


def compressible(sample: bytes) -> bool:
    """Whether data that looks like ``sample`` is worth compressing.

    Compressing the sample at the fastest level costs a fraction of a millisecond and
    is a far better guess than file extensions: logs, JSON and source shrink to a few
    tenths, media and archives do not shrink at all and would only cost CPU.
    """
    if len(sample) < MIN_SIZE:
        return False
    packed = zstandard.ZstdCompressor(level=1).compress(sample)
    return len(packed) < len(sample) * WORTH_RATIO


def sample_of(source: BinaryIO, size: int, start: int = 0) -> list[bytes]:
    """Up to three slices (beginning, middle, end) of the ``size`` bytes from ``start``.

    A file whose header is text but whose body is already compressed (a media file with
    metadata up front) is judged by more than its first bytes. The position is kept.
    """
    if size <= 3 * SAMPLE_SLICE:
        spans = [(start, size)]
    else:
        middle = start + size // 2
        spans = [
            (start, SAMPLE_SLICE),
            (middle, SAMPLE_SLICE),
            (start + size - SAMPLE_SLICE, SAMPLE_SLICE),
        ]
    position = source.tell()
    try:
        slices = []
        for offset, length in spans:
            source.seek(offset)
            slices.append(source.read(length))
        return slices
    finally:
        source.seek(position)


def worth_compressing(slices: list[bytes]) -> bool:
    """The majority of the sampled slices compress (see :func:`sample_of`)."""
    votes = sum(1 for piece in slices if compressible(piece))
    return votes * 2 > len(slices)


def file_compressible(path: str | os.PathLike[str]) -> bool:
    """:func:`worth_compressing` for a file on disk (blocking: call from a thread)."""
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        return worth_compressing(sample_of(source, size))


class Encoder:
    """A streaming zstd encoder: ``encode`` what you have, ``finish`` once at the end.

    ``size`` (when known) is written into the frame header so a decoder can see the
    promised size up front; either way the receiver verifies the hash.
    """

    def __init__(self, size: int | None = None, level: int = LEVEL) -> None:
        compressor = zstandard.ZstdCompressor(
            level=level, write_content_size=size is not None, write_checksum=False
        )
        self._obj = compressor.compressobj(size=-1 if size is None else size)
        self.consumed = 0
        self.produced = 0

    def encode(self, data: bytes) -> bytes:
        """Compressed bytes that are ready after ``data`` (often empty: zstd buffers)."""
        self.consumed += len(data)
        out = self._obj.compress(data)
        self.produced += len(out)
        return out

    def finish(self) -> bytes:
        """The end of the frame; the encoder is spent afterwards."""
        out = self._obj.flush()
        self.produced += len(out)
        return out


def encode_stream(
    source: BinaryIO, length: int | None = None, chunk: int = 256 * 1024
) -> Iterator[bytes]:
    """Compressed pieces of ``length`` bytes (or everything) read from ``source``.

    Blocking reads: drive it from a thread or a pull producer that reads one piece at
    a time. Empty pieces are skipped.
    """
    encoder = Encoder(size=length)
    remaining = -1 if length is None else length
    while remaining != 0:
        data = source.read(chunk if remaining < 0 else min(chunk, remaining))
        if not data:
            break
        if remaining > 0:
            remaining -= len(data)
        out = encoder.encode(data)
        if out:
            yield out
    yield encoder.finish()


def compress(data: bytes, level: int = LEVEL) -> bytes:
    """One-shot compression of a small body (a batch entry, a test)."""
    encoder = Encoder(size=len(data), level=level)
    return encoder.encode(data) + encoder.finish()


class _FrameWalker:
    """Follows one zstd frame's structure without decoding it.

    ``advance`` consumes bytes up to and including the end of the next block (or all
    it is given), so the caller can feed the zstd context one block end at a time.
    RFC 8878 section 3.1.1 gives the layout: magic, frame header, blocks with 3-byte
    headers (last flag, type, size), optional 4-byte checksum.
    """

    def __init__(self) -> None:
        self._state = "magic"
        self._want = 4  # bytes to collect (header states) or skip (body states)
        self._buf = b""
        self._checksum = False
        self._last = False
        self.done = False

    def advance(self, data: memoryview) -> int:
        """Consume from ``data``; stop right after a block ends. Returns bytes used."""
        used = 0
        while used < len(data):
            if self.done:
                raise DecodeError("trailing bytes after the zstd frame")
            if self._state in ("magic", "descriptor", "block"):
                take = min(self._want - len(self._buf), len(data) - used)
                self._buf += bytes(data[used : used + take])
                used += take
                if len(self._buf) < self._want:
                    continue
                header, self._buf = self._buf, b""
                if self._parse(header):
                    return used
            else:  # "skip" (frame header fields), "body", "checksum"
                take = min(self._want, len(data) - used)
                self._want -= take
                used += take
                if self._want == 0 and self._skipped():
                    return used
        return used

    def _parse(self, header: bytes) -> bool:
        """Act on a complete fixed-size header; True when a block has just ended."""
        if self._state == "magic":
            if header != _MAGIC:
                raise DecodeError("not a zstd frame")
            self._state, self._want = "descriptor", 1
            return False
        if self._state == "descriptor":
            flags = header[0]
            if flags & 0x08:
                raise DecodeError("reserved bit set in the zstd frame header")
            fcs_flag, single = flags >> 6, bool(flags & 0x20)
            self._checksum = bool(flags & 0x04)
            dict_size = (0, 1, 2, 4)[flags & 0x03]
            fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
            rest = (0 if single else 1) + dict_size + fcs_size
            self._state, self._want = "skip", rest
            return self._want == 0 and self._skipped()
        # block header, little-endian: bit 0 last, bits 1-2 type, bits 3-23 size
        value = int.from_bytes(header, "little")
        self._last = bool(value & 1)
        kind, size = (value >> 1) & 3, value >> 3
        if kind == 3:
            raise DecodeError("reserved zstd block type")
        if size > MAX_BLOCK:
            raise DecodeError("zstd block larger than 128 KiB")
        self._state, self._want = "body", (1 if kind == 1 else size)
        return self._want == 0 and self._skipped()

    def _skipped(self) -> bool:
        """A skipped stretch is over; True when it was a block's body."""
        if self._state == "skip":
            self._state, self._want = "block", 3
            return False
        if self._state == "body":
            if self._last and self._checksum:
                self._state, self._want = "checksum", 4
            elif self._last:
                self.done = True
            else:
                self._state, self._want = "block", 3
            return True
        self.done = True  # checksum read
        return False


class Decoder:
    """Push compressed bytes in with :meth:`write`; decoded bytes go to ``sink``.

    ``sink`` gets pieces of at most 128 KiB. ``limit`` bounds the decoded total:
    :class:`DecodedTooLarge` is raised before the piece that would cross it reaches
    the sink. :meth:`close` raises :class:`DecodeError` unless exactly one complete
    frame was seen.
    """

    def __init__(self, sink: Callable[[bytes], object], limit: int | None = None) -> None:
        self._sink = sink
        self._limit = limit
        self._walker = _FrameWalker()
        self._obj = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj()
        self.consumed = 0
        self.decoded = 0

    def write(self, data: bytes) -> None:
        """Decode what ``data`` completes; raises :class:`DecodeError` on bad input."""
        view = memoryview(data)
        position = 0
        while position < len(view):
            used = self._walker.advance(view[position:])
            piece = view[position : position + used]
            position += used
            self.consumed += used
            try:
                out = self._obj.decompress(piece)
            except zstandard.ZstdError as e:
                raise DecodeError(f"bad zstd data: {e}") from None
            if out:
                self.decoded += len(out)
                if self._limit is not None and self.decoded > self._limit:
                    raise DecodedTooLarge(self._limit)
                self._sink(out)

    def close(self) -> None:
        """Check that the frame ended: a truncated stream is an error, not a short file."""
        if not self._walker.done or not self._obj.eof:
            raise DecodeError("truncated zstd stream")


def decompress(data: bytes, limit: int | None = None) -> bytes:
    """One-shot decode of a small body, with the same checks as :class:`Decoder`."""
    pieces: list[bytes] = []
    decoder = Decoder(pieces.append, limit)
    decoder.write(data)
    decoder.close()
    return b"".join(pieces)


class DecodingReader:
    """A read-only file over a compressed ``source``: ``read(n)`` returns decoded bytes.

    What consumes a plain body (the store's staging, which hashes and writes as it
    reads) consumes a compressed one through this unchanged, so the verify-then-rename
    path exists once. Memory: one decoded block plus ``n``. :class:`DecodedTooLarge`
    past ``limit``; :class:`DecodeError` on a bad or truncated stream, at the read that
    finds it (so the staged temp file is removed, never renamed into place).
    """

    def __init__(self, source: BinaryIO, limit: int | None, chunk: int = 64 * 1024) -> None:
        self._source = source
        self._chunk = chunk
        self._pending: list[bytes] = []
        self._size = 0
        self._decoder = Decoder(self._keep, limit)
        self._ended = False

    def _keep(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)

    def read(self, n: int = -1) -> bytes:
        while not self._ended and (n < 0 or self._size < n):
            data = self._source.read(self._chunk)
            if not data:
                self._decoder.close()
                self._ended = True
                break
            self._decoder.write(data)
        joined = b"".join(self._pending)
        if n < 0 or n >= len(joined):
            self._pending, self._size = [], 0
            return joined
        self._pending, self._size = [joined[n:]], len(joined) - n
        return joined[:n]

    def readline(self, limit: int = -1) -> bytes:
        """Up to and including the next newline (at most ``limit`` bytes), like a file."""
        while True:
            joined = b"".join(self._pending)
            self._pending = [joined] if joined else []
            newline = joined.find(b"\n")
            if newline >= 0 and (limit < 0 or newline < limit):
                return self.read(newline + 1)
            if (limit >= 0 and len(joined) >= limit) or self._ended:
                return self.read(limit)
            data = self._source.read(self._chunk)
            if not data:
                self._decoder.close()
                self._ended = True
            else:
                self._decoder.write(data)

    @property
    def decoded(self) -> int:
        """Decoded bytes so far."""
        return self._decoder.decoded
