"""Range parsing and multipart framing: golden cases from Caddy 2.6.2 plus properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.handlers.file_server.ranges import (
    MAX_RANGES,
    ByteRange,
    InvalidRange,
    UnsatisfiableRange,
    multipart_layout,
    parse_range,
    worth_honouring,
)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 12, []),
        ("", 12, []),
        ("bytes=0-4", 12, [(0, 5)]),
        ("bytes=-3", 12, [(9, 3)]),
        ("bytes=6-", 12, [(6, 6)]),
        ("bytes=0-99999", 12, [(0, 12)]),
        ("bytes=-100", 12, [(0, 12)]),
        ("bytes=0-1,4-5,-2", 12, [(0, 2), (4, 2), (10, 2)]),
        ("bytes= 0-1 , 3-4 ", 12, [(0, 2), (3, 2)]),
        ("bytes=0-1,,3-4", 12, [(0, 2), (3, 2)]),
        ("bytes=100-,0-0", 12, [(0, 1)]),  # one unsatisfiable range among good ones
        ("bytes=11-11", 12, [(11, 1)]),
        ("bytes=0-99999999999999999999999", 12, [(0, 12)]),  # RFC: clamp, never overflow
    ],
)
def test_golden(header, size, expected):
    assert [(r.start, r.length) for r in parse_range(header, size)] == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-2",
        "items=0-1",
        "bytes=x-1",
        "bytes=1",
        "bytes=--5",
        "bytes=-",
        "bytes=+1-2",
        "bytes=1-2-3",
        "bytes=-+3",
        "bytes=0x1-2",
        "bytes=\u0661-2",
        "Bytes=0-1",
    ],
)
def test_invalid(header):
    with pytest.raises(InvalidRange) as info:
        parse_range(header, 12)
    assert not isinstance(info.value, UnsatisfiableRange)
    assert str(info.value) == "invalid range"


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 12),
        ("bytes=12-", 12),
        ("bytes=-0", 12),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
        ("bytes=12-20,13-", 12),
    ],
)
def test_unsatisfiable(header, size):
    with pytest.raises(UnsatisfiableRange, match="failed to overlap"):
        parse_range(header, size)


def test_content_range_text():
    assert ByteRange(9, 3).content_range(12) == "bytes 9-11/12"


def test_worth_honouring_rejects_overlapping_totals_and_floods():
    assert worth_honouring([ByteRange(0, 6), ByteRange(6, 6)], 12)
    assert not worth_honouring([ByteRange(0, 11), ByteRange(0, 11)], 12)  # Go sends 200
    assert not worth_honouring([ByteRange(i, 1) for i in range(MAX_RANGES + 1)], 1000)
    assert not worth_honouring([], 12)


spec = st.one_of(
    st.tuples(st.integers(0, 300), st.one_of(st.none(), st.integers(0, 300))).filter(
        lambda t: t[1] is None or t[1] >= t[0]
    ),
    st.tuples(st.none(), st.integers(0, 300)),
)


def spec_text(first, last):
    return f"{'' if first is None else first}-{'' if last is None else last}"


@given(st.lists(spec, min_size=1, max_size=6), st.integers(0, 200))
def test_every_returned_range_is_inside_and_matches_its_spec(specs, size):
    header = "bytes=" + ",".join(spec_text(*s) for s in specs)
    expected = []
    for first, last in specs:
        if first is None:
            length = min(last, size)
            if length > 0:
                expected.append((size - length, length))
        elif first < size:
            end = size - 1 if last is None else min(last, size - 1)
            expected.append((first, end - first + 1))
    if not expected:
        with pytest.raises(UnsatisfiableRange):
            parse_range(header, size)
        return
    got = parse_range(header, size)
    assert [(r.start, r.length) for r in got] == expected
    for r in got:
        assert 0 <= r.start <= r.end < size and r.length > 0


@given(st.text(max_size=60), st.integers(0, 10**12))
def test_arbitrary_headers_only_raise_invalid_range(header, size):
    try:
        ranges = parse_range(header, size)
    except InvalidRange:
        return
    for r in ranges:
        assert r.start >= 0 and r.length > 0 and r.end < size


@given(
    st.binary(min_size=1, max_size=400),
    st.lists(st.tuples(st.integers(0, 399), st.integers(0, 399)), min_size=2, max_size=5),
    st.sampled_from([None, "text/plain; charset=utf-8", "image/png"]),
)
def test_multipart_body_length_and_parts(data, pairs, content_type):
    size = len(data)
    header = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in pairs)
    try:
        ranges = parse_range(header, size)
    except UnsatisfiableRange:
        return
    boundary = "b0undary"
    layout = multipart_layout(ranges, size, content_type, boundary)
    body = b"".join(head + data[r.start : r.end + 1] for head, r in layout.parts) + layout.trailer
    assert len(body) == layout.length
    assert layout.content_type == "multipart/byteranges; boundary=b0undary"
    # Parse it back as a client would: every part carries its range and its bytes.
    chunks = body.split(b"--" + boundary.encode())
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    for chunk, r in zip(chunks[1:-1], ranges, strict=True):
        head, _, payload = chunk.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {r.start}-{r.end}/{size}".encode() in head
        # Caddy (Go's ServeContent) writes the field in every part, empty without a type.
        assert f"Content-Type: {content_type or ''}\r\n".encode() in head + b"\r\n"
        assert payload.removesuffix(b"\r\n") == data[r.start : r.end + 1]


def test_multipart_layout_matches_go_framing():
    ranges = [ByteRange(0, 2), ByteRange(10, 2)]
    layout = multipart_layout(ranges, 12, "text/plain; charset=utf-8", "B")
    first, second = layout.parts
    assert (
        first[0]
        == b"--B\r\nContent-Range: bytes 0-1/12\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    assert second[0].startswith(b"\r\n--B\r\n")
    assert layout.trailer == b"\r\n--B--\r\n"
    assert re.fullmatch(r"multipart/byteranges; boundary=B", layout.content_type)


def test_multipart_parts_of_an_untyped_file_carry_an_empty_type_as_caddys_do():
    """Checked against Caddy 2.6 on a ``.bin`` file: ``Content-Type: `` in each part."""
    layout = multipart_layout([ByteRange(0, 2), ByteRange(10, 2)], 12, None, "B")
    assert layout.parts[0][0] == b"--B\r\nContent-Range: bytes 0-1/12\r\nContent-Type: \r\n\r\n"
