"""Encoding negotiation, content sniffing and the streaming encoders, without a server."""

from __future__ import annotations

import gzip
import re
import zlib

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.config.errors import ConfigError
from caddytw.handlers.encode.encoders import Gzip, Zstd, accepted_encodings
from caddytw.http.sniff import detect_content_type


@pytest.mark.parametrize(
    ("header", "prefer", "expected"),
    [
        (None, [], []),
        ("", ["gzip"], []),
        ("gzip", [], ["gzip"]),
        ("GZIP , Zstd", [], ["gzip", "zstd"]),
        ("gzip, zstd", ["zstd", "gzip"], ["zstd", "gzip"]),
        ("gzip;q=0.5, zstd", ["gzip", "zstd"], ["zstd", "gzip"]),
        ("gzip;q=0.5, zstd;q=0.5", ["zstd"], ["zstd", "gzip"]),
        ("zstd;q=0, gzip", [], ["gzip"]),
        ("gzip;q=2, zstd;q=0.9", [], ["gzip", "zstd"]),  # out-of-range q counts as 1
        ("gzip;q=abc, br;q=0.1", [], ["gzip", "br"]),
        ("gzip; Q=0.2, zstd;q=0.3", [], ["zstd", "gzip"]),
        ("gzip;level=1;q=0.1, zstd", [], ["gzip", "zstd"]),  # only the first parameter counts
        ("gzip;q= 0.2, zstd;q=0.5", [], ["gzip", "zstd"]),  # Go rejects the space: q=1
        ("identity, *", [], ["identity", "*"]),
    ],
)
def test_accepted_encodings(header, prefer, expected):
    assert accepted_encodings(header, prefer) == expected


def test_websocket_handshakes_are_never_encoded():
    assert accepted_encodings("gzip, identity", [], websocket=True) == ["identity"]


qvalues = st.sampled_from(["", ";q=0", ";q=0.1", ";q=0.5", ";q=1", ";q=1.0", ";q=0.500"])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["gzip", "zstd", "br", "x"]), qvalues), max_size=6))
def test_accepted_encodings_orders_by_q_then_prefer(items):
    header = ", ".join(name + q for name, q in items)
    prefer = ["zstd", "gzip"]
    result = accepted_encodings(header, prefer)

    def quality(q):
        return float(q[3:]) if q else 1.0

    expected_names = [name for name, q in items if quality(q) > 0]
    assert sorted(result) == sorted(expected_names)
    ranks = {"zstd": 2, "gzip": 1}
    keyed = sorted(
        (
            (quality(q), ranks.get(name, -1), index, name)
            for index, (name, q) in enumerate(items)
            if quality(q) > 0
        ),
        key=lambda t: (-t[0], -t[1], t[2]),
    )
    assert result == [t[3] for t in keyed]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"  <!DOCTYPE html><p>", "text/html; charset=utf-8"),
        (b"<html>", "text/html; charset=utf-8"),
        (b"<HTML ", "text/html; charset=utf-8"),
        (b"<htmlx", "text/plain; charset=utf-8"),
        (b"<!-- c -->", "text/html; charset=utf-8"),
        (b"\n<?xml version='1.0'?>", "text/xml; charset=utf-8"),
        (b"%PDF-1.4", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"GIF89a", "image/gif"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x1f\x8b\x08\x00", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
        (b"\xef\xbb\xbfhello", "text/plain; charset=utf-8"),
        (b"plain words", "text/plain; charset=utf-8"),
        (b'{"json": true}', "text/plain; charset=utf-8"),
        (b"bin\x00ary", "application/octet-stream"),
        (b"", "text/plain; charset=utf-8"),
    ],
)
def test_detect_content_type(data, content_type):
    assert detect_content_type(data) == content_type


def test_detect_content_type_reads_only_the_first_512_bytes():
    assert detect_content_type(b"a" * 512 + b"\x00") == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "encoding", [Gzip(), Gzip(level=9), Gzip(level=-2), Zstd(), Zstd(level=11, checksum=False)]
)
def test_streams_emit_every_chunk_at_once_and_decode(encoding):
    chunks = [(b"line %d of a streamed body\n" % i) * 50 for i in range(30)]
    stream = encoding.new_stream()
    pieces = [stream.encode(chunk) for chunk in chunks]
    assert all(pieces), "each write must produce output (sync flush), never accumulate"
    assert stream.encode(b"") == b""
    data = b"".join(pieces) + stream.finish()
    body = b"".join(chunks)
    if encoding.name == "gzip":
        assert gzip.decompress(data) == body
        # Each flushed piece so far is decodable on its own (a client sees it at once).
        partial = zlib.decompressobj(31).decompress(pieces[0])
        assert partial == chunks[0]
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == body
        assert zstandard.ZstdDecompressor().decompressobj().decompress(pieces[0]) == chunks[0]


def test_zstd_window_is_limited_to_128k():
    data = Zstd().compress(b"x" * 1_000_000)
    assert zstandard.get_frame_parameters(data).window_size <= 128 * 1024
    stream = Zstd().new_stream()
    streamed = stream.encode(b"y" * 10) + stream.finish()
    assert zstandard.get_frame_parameters(streamed).window_size <= 128 * 1024


def test_one_shot_compression():
    assert gzip.decompress(Gzip().compress(b"abc" * 100)) == b"abc" * 100
    assert zstandard.ZstdDecompressor().decompress(Zstd().compress(b"abc" * 100)) == b"abc" * 100


def test_encoder_config():
    assert Gzip.parse({}, "g").level == 5
    assert Gzip.parse({"level": 0}, "g").level == 5
    assert Gzip.parse({"level": -3}, "g").level == -3
    assert Zstd.parse({"level": "best"}, "z").level == 11
    assert Zstd.parse({}, "z").checksum
    assert not Zstd.parse({"checksum": False}, "z").checksum
    frame = Zstd().compress(b"data")
    assert zstandard.get_frame_parameters(frame).has_checksum
    with pytest.raises(ConfigError, match=re.escape("g.level: quality too high")):
        Gzip.parse({"level": 10}, "g")
    with pytest.raises(ConfigError, match=re.escape("g.level: quality too low")):
        Gzip.parse({"level": -4}, "g")
    with pytest.raises(ConfigError, match=re.escape("z.level: unexpected compression level")):
        Zstd.parse({"level": "max"}, "z")
    with pytest.raises(ConfigError, match=re.escape('z.window: unknown field "window"')):
        Zstd.parse({"window": 1}, "z")
