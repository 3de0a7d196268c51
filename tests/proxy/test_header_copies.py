"""The proxy's header copies on ``Headers``' dict (headers.py) give exactly what the
public ``Headers`` methods give, for any fields."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.web.http_headers import Headers

from caddytw.handlers.reverse_proxy.headers import (
    add_raw_fields,
    copy_headers,
    merge_response_headers,
    strip_hop_by_hop,
)

names = st.sampled_from(
    [b"content-type", b"Content-Type", b"etag", b"X-Custom", b"te", b"Connection", b"date"]
) | st.from_regex(rb"\A[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}\Z")
values = st.binary(max_size=20).filter(lambda v: b"\x00" not in v) | st.sampled_from(
    [b"a\r\nb", b"x\ny", b"close", b"trailers, foo"]
)
fields = st.lists(st.tuples(names, values), max_size=10)


def public(fields: list[tuple[bytes, bytes]]) -> Headers:
    headers = Headers()
    for name, value in fields:
        headers.addRawHeader(name, value)
    return headers


@settings(max_examples=40)
@given(fields)
def test_add_raw_fields_is_add_raw_header(fields):
    fast = Headers()
    add_raw_fields(fast, fields)
    assert fast == public(fields)


@settings(max_examples=40)
@given(fields)
def test_copy_is_headers_copy_and_independent(fields):
    original = public(fields)
    copy = copy_headers(original)
    assert copy == original.copy()
    copy.addRawHeader(b"x-added", b"1")
    for name in list(dict(copy.getAllRawHeaders())):
        copy.addRawHeader(name, b"more")
    assert original == public(fields)


@settings(max_examples=40)
@given(fields, fields)
def test_merge_is_add_raw_header_per_value(client_fields, upstream_fields):
    client, upstream = public(client_fields), public(upstream_fields)
    expected = public(client_fields)
    if upstream.hasHeader(b"date"):
        expected.removeHeader(b"date")
    for name, vals in upstream.getAllRawHeaders():
        if name.lower() != b"x-custom":
            for value in vals:
                expected.addRawHeader(name, value)
    merge_response_headers(client, upstream, frozenset({b"x-custom"}))
    assert client == expected
    client.addRawHeader(b"etag", b"new")
    assert upstream == public(upstream_fields)


@settings(max_examples=40)
@given(fields)
def test_strip_with_nothing_hop_by_hop_changes_nothing(fields):
    headers = public(fields)
    strip_hop_by_hop(headers, keep_te_trailers=True)
    lowered = {name.lower() for name, _ in fields}
    if not lowered & {b"te", b"connection"}:
        assert headers == public(fields)
    assert not headers.hasHeader(b"connection")
