"""The proxy's header copies on ``Headers``' dict (headers.py) give exactly what the
public ``Headers`` methods give, for any fields."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.web.http_headers import Headers

from caddytw.handlers.reverse_proxy.headers import (
    HOP_BY_HOP,
    add_raw_fields,
    copy_headers,
    forward_fields,
    hop_by_hop_keys,
    merge_response_headers,
    strip_hop_by_hop,
)

names = st.sampled_from(
    [
        b"content-type",
        b"Content-Type",
        b"etag",
        b"X-Custom",
        b"te",
        b"Connection",
        b"date",
        b"host",
        b"x-forwarded-for",
        b"X-Forwarded-Proto",
        b"x-forwarded-host",
        b"content-length",
        b"keep-alive",
    ]
) | st.from_regex(rb"\A[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}\Z")
values = st.binary(max_size=20).filter(lambda v: b"\x00" not in v) | st.sampled_from(
    [
        b"a\r\nb",
        b"x\ny",
        b"close",
        b"trailers, foo",
        b"x-custom, Host",
        b"X-Forwarded-For, te",
        b"keep-alive, a b,",
        b"",
    ]
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
    merge_response_headers(client, upstream, frozenset({b"X-Custom"}))
    assert client == expected
    client.addRawHeader(b"etag", b"new")
    assert upstream == public(upstream_fields)


@settings(max_examples=40)
@given(fields)
def test_strip_with_nothing_hop_by_hop_changes_nothing(fields):
    headers = public(fields)
    strip_hop_by_hop(headers, keep_te_trailers=True)
    lowered = {name.lower() for name, _ in fields}
    if not lowered & set(HOP_BY_HOP):
        assert headers == public(fields)
    assert not headers.hasHeader(b"connection")


def lowered_connection_tokens(headers: Headers) -> set[bytes]:
    """The field names ``Connection`` lists (what is no field name names nothing)."""
    return {
        token.strip().lower()
        for value in headers.getRawHeaders(b"connection", [])
        for token in value.split(b",")
        if re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", token.strip())
    }


@settings(max_examples=60)
@given(fields)
def test_hop_by_hop_keys_are_the_fixed_and_the_listed_names(fields):
    headers = public(fields)
    expected = set(HOP_BY_HOP) | lowered_connection_tokens(headers)
    assert {key.lower() for key in hop_by_hop_keys(headers._rawHeaders)} == expected


def forwarded_by_public_methods(
    request: Headers, peer: bytes, scheme: bytes, trusted: bool
) -> Headers:
    """The rules said with ``Headers``' public methods: Go's hop-by-hop removal (TE:
    trailers kept, Host never dropped), no Content-Length, Caddy's X-Forwarded-*."""
    headers = request.copy()
    listed = lowered_connection_tokens(headers)
    te_trailers = any(
        b"trailers" in [t.strip().lower() for t in value.split(b",")]
        for value in headers.getRawHeaders(b"te", [])
    )
    for name in (set(HOP_BY_HOP) | listed) - {b"host"}:
        headers.removeHeader(name)
    if te_trailers:
        headers.setRawHeaders(b"te", [b"trailers"])
    headers.removeHeader(b"content-length")
    prior_for = b", ".join(headers.getRawHeaders(b"x-forwarded-for", []))
    if trusted and prior_for:
        headers.setRawHeaders(b"x-forwarded-for", [prior_for + b", " + peer])
    else:
        headers.setRawHeaders(b"x-forwarded-for", [peer])
    host = (request.getRawHeaders(b"host") or [b""])[-1]
    for name, own in ((b"x-forwarded-proto", scheme), (b"x-forwarded-host", host)):
        prior = headers.getRawHeaders(name, [])
        headers.setRawHeaders(name, [prior[-1] if trusted and prior and prior[-1] else own])
    return headers


@settings(max_examples=80)
@given(fields, st.booleans())
def test_forward_fields_follow_the_rules(fields, trusted):
    request = public(fields)
    before = request.copy()
    forwarded = Headers()
    forwarded._rawHeaders = forward_fields(
        request._rawHeaders, peer=b"10.0.0.1", scheme=b"https", trusted=trusted
    )
    assert forwarded == forwarded_by_public_methods(request, b"10.0.0.1", b"https", trusted)
    forwarded.addRawHeader(b"x-custom", b"added")
    for name in list(forwarded._rawHeaders):
        forwarded.addRawHeader(name, b"more")
    assert request == before  # the request's own lists are not shared
