"""zstd on the wire: round trips under any split, bombs and truncation refused, q-values."""

from __future__ import annotations

import contextlib
import io
import itertools
import os

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.sync import compression as c


def _decode_in_pieces(blob: bytes, cuts: list[int], limit: int | None = None) -> list[bytes]:
    out: list[bytes] = []
    decoder = c.Decoder(out.append, limit)
    bounds = sorted({0, len(blob), *(cut % (len(blob) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(bounds):
        decoder.write(blob[start:end])
    decoder.close()
    return out


@settings(max_examples=150, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=4096),
        st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=64), st.integers(1, 5000)),
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    known_size=st.booleans(),
    checksum=st.booleans(),
)
def test_any_split_round_trips(
    data: bytes, cuts: list[int], known_size: bool, checksum: bool
) -> None:
    """The walker must agree with zstd on where blocks and frames end, whatever the
    encoder's options and however the network cuts the stream."""
    encoder = zstandard.ZstdCompressor(write_checksum=checksum, write_content_size=known_size)
    blob = (
        encoder.compress(data) if known_size else b"".join(encoder.read_to_iter(io.BytesIO(data)))
    )
    assert b"".join(_decode_in_pieces(blob, cuts)) == data
    assert b"".join(_decode_in_pieces(c.compress(data), cuts)) == data


def test_stream_encoder_matches_and_output_pieces_stay_small() -> None:
    data = (b"x" * 3_000_000) + os.urandom(300_000) + (b"log line\n" * 100_000)
    blob = b"".join(c.encode_stream(io.BytesIO(data), len(data), chunk=50_000))
    pieces = _decode_in_pieces(blob, [len(blob)])
    assert b"".join(pieces) == data
    assert max(len(piece) for piece in pieces) <= c.MAX_BLOCK


def test_bomb_is_refused_before_it_is_decoded() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 << 20))
    assert len(bomb) < 4096
    seen: list[int] = []
    decoder = c.Decoder(lambda piece: seen.append(len(piece)), limit=1 << 20)
    with pytest.raises(c.DecodedTooLarge):
        decoder.write(bomb)
    assert sum(seen) <= 1 << 20


def test_truncated_and_trailing_streams_are_errors() -> None:
    blob = c.compress(b"hello " * 50_000 + os.urandom(5000))
    for cut in (1, 3, 4, 5, len(blob) // 2, len(blob) - 1):
        with pytest.raises(c.DecodeError, match="truncated"):
            c.decompress(blob[:cut])
    with pytest.raises(c.DecodeError, match="trailing"):
        c.decompress(blob + b"\0")
    with pytest.raises(c.DecodeError, match="trailing"):
        c.decompress(blob + blob)  # one frame per body, never a second
    with pytest.raises(c.DecodeError, match="not a zstd frame"):
        c.decompress(b"hello world")


@given(st.binary(max_size=2000))
def test_garbage_is_a_decode_error_never_a_crash(junk: bytes) -> None:
    with contextlib.suppress(c.DecodeError):
        c.decompress(c.compress(b"seed")[:4] + junk)


def test_a_sample_decides() -> None:
    assert c.compressible(b'{"level": "info", "msg": "request done"}\n' * 1000)
    assert not c.compressible(os.urandom(48 * 1024))
    assert not c.compressible(b"tiny")  # not worth a frame header
    text = b"plain text line\n" * 10_000
    media = io.BytesIO(text + os.urandom(2_000_000))  # a text header, then noise
    media.seek(7)
    slices = c.sample_of(media, len(media.getvalue()))
    assert media.tell() == 7  # callers keep their position
    assert c.compressible(slices[0]) and not c.worth_compressing(slices)
    assert c.worth_compressing(c.sample_of(io.BytesIO(text * 10), len(text) * 10))
    assert c.worth_compressing(c.sample_of(io.BytesIO(text[:2000]), 2000))
    assert not c.worth_compressing(c.sample_of(io.BytesIO(b""), 0))


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("zstd", True),
        ("gzip, zstd;q=0.5", True),
        ("gzip, ZSTD", True),
        ("zstd;q=0", False),
        ("zstd;q=0.0, *", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip, br", False),
        ("", False),
        (None, False),
        (b"zstd", True),
        ("zstd;q=junk", False),
    ],
)
def test_accept_encoding(header: str | bytes | None, ok: bool) -> None:
    assert c.accepts_zstd(header) is ok


def test_content_encoding_tokens() -> None:
    assert c.is_zstd("zstd") and c.is_zstd(b" ZSTD ")
    assert not c.is_zstd("gzip, zstd") and not c.is_zstd(None)
    assert c.is_identity(None) and c.is_identity("identity") and not c.is_identity("zstd")
