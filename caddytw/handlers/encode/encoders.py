"""Streaming response encoders (gzip, zstd) and Caddy's Accept-Encoding negotiation.

A stream object follows twisted.web's request encoder protocol: ``encode(data)`` for
each write and ``finish()`` for the tail. Every write is flushed through the
compressor (a sync flush), so a slowly streamed answer (events, a long poll) reaches
the client as it is produced; memory stays at the compressor's window whatever the size.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Protocol

import zstandard

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader

GZIP_DEFAULT_LEVEL = 5
ZSTD_WINDOW_LOG = 17  # 128 KiB, as Caddy limits it to spare clients' memory
ZSTD_LEVELS = {"fastest": 1, "default": 3, "better": 7, "best": 11}


class StreamEncoder(Protocol):
    def encode(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Encoding(Protocol):
    name: str

    def new_stream(self) -> StreamEncoder: ...

    def compress(self, data: bytes) -> bytes: ...


class _GzipStream:
    def __init__(self, level: int, strategy: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31, 8, strategy)

    def encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._compressor.flush(zlib.Z_FINISH)

    def compress_all(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_FINISH)


@dataclass(frozen=True)
class Gzip:
    """``{"level": N}``: 1-9, 0 = Caddy's default 5; Go's -1 (default), -2 (Huffman
    only) and -3 (stateless) are accepted too."""

    level: int = GZIP_DEFAULT_LEVEL
    name: str = "gzip"

    @classmethod
    def parse(cls, data: Any, path: str) -> Gzip:
        reader = ObjectReader(data, path)
        level = reader.integer("level")
        reader.done()
        if level < -3:
            raise ConfigError(reader.at("level"), "quality too low; must be >= -3")
        if level > 9:
            raise ConfigError(reader.at("level"), "quality too high; must be <= 9")
        return cls(level or GZIP_DEFAULT_LEVEL)

    def new_stream(self) -> _GzipStream:
        if self.level == -2:
            return _GzipStream(6, zlib.Z_HUFFMAN_ONLY)
        level = {-1: 6, -3: 1}.get(self.level, self.level)
        return _GzipStream(level, zlib.Z_DEFAULT_STRATEGY)

    def compress(self, data: bytes) -> bytes:
        """A whole body in one gzip member."""
        return self.new_stream().compress_all(data)


class _ZstdStream:
    def __init__(self, compressor: zstandard.ZstdCompressor) -> None:
        self._stream = compressor.compressobj()

    def encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._stream.compress(data) + self._stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._stream.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


@dataclass(frozen=True)
class Zstd:
    """``{"level": "fastest"|"default"|"better"|"best", "checksum": bool}``; frames carry
    a checksum unless ``checksum`` is false, as with Go's zstd encoder."""

    level: int = ZSTD_LEVELS["default"]
    checksum: bool = True
    name: str = "zstd"

    @classmethod
    def parse(cls, data: Any, path: str) -> Zstd:
        reader = ObjectReader(data, path)
        level_name = reader.text("level") or "default"
        checksum = reader.flag("checksum", True)
        reader.done()
        if level_name not in ZSTD_LEVELS:
            raise ConfigError(
                reader.at("level"),
                f"unexpected compression level {level_name!r}, use one of "
                + ", ".join(repr(name) for name in ZSTD_LEVELS),
            )
        return cls(ZSTD_LEVELS[level_name], checksum)

    def _compressor(self) -> zstandard.ZstdCompressor:
        params = zstandard.ZstdCompressionParameters.from_level(
            self.level, window_log=ZSTD_WINDOW_LOG, write_checksum=int(self.checksum)
        )
        return zstandard.ZstdCompressor(compression_params=params)

    def new_stream(self) -> StreamEncoder:
        return _ZstdStream(self._compressor())

    def compress(self, data: bytes) -> bytes:
        """A whole body in one zstd frame."""
        return self._compressor().compress(data)


ENCODINGS: dict[str, Any] = {"gzip": Gzip, "zstd": Zstd}


def accepted_encodings(header: str | None, prefer: list[str], websocket: bool = False) -> list[str]:
    """Caddy's ``AcceptedEncodings``: names the client accepts, best first.

    Higher q first; equal q (within 1e-5) ordered by the server's ``prefer`` list, then
    as the client listed them. ``q=0`` refuses; a WebSocket handshake is never encoded.
    """
    if not header:
        return []
    ranked: list[tuple[float, int, int, str]] = []
    for position, item in enumerate(header.split(",")):
        name, found, params = item.partition(";")
        name = name.strip().lower()
        quality = 1.0
        if found:
            first = params.partition(";")[0].strip()
            if first[:2].lower() == "q=":
                number = first[2:]
                try:
                    value = float(number) if number == number.strip() else -1.0
                except ValueError:
                    value = -1.0
                if 0.0 <= value <= 1.0:
                    quality = value
        if quality < 0.00001:
            continue
        if websocket and name != "identity":
            continue
        order = len(prefer) - prefer.index(name) if name in prefer else -1
        ranked.append((quality, order, position, name))
    # q-values are compared with Caddy's 1e-5 tolerance; the sort is stable.
    ranked.sort(key=lambda entry: (-round(entry[0], 5), -entry[1], entry[2]))
    return [entry[3] for entry in ranked]
