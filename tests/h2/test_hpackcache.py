"""The HPACK block caches (caddytw/wire/hpackcache.py) code exactly what hpack codes:
for any sequence of header lists (repeats, table growth and eviction, resizes,
never-indexed fields), byte for byte the same blocks and the same decoded lists."""

from __future__ import annotations

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.wire.hpackcache import CachingDecoder, CachingEncoder, install

fields = st.tuples(
    st.sampled_from([b":status", b"date", b"etag", b"content-type", b"x-a", b"x-b"]),
    st.sampled_from([b"200", b"1", b"2", b"text/plain", b"x" * 40, b"y" * 300]),
)
# (a never-indexed field equal to a plain one, as tuples, is coded differently)
header_lists = st.lists(
    st.one_of(fields, fields.map(lambda f: NeverIndexedHeaderTuple(*f))), min_size=1, max_size=6
)
steps = st.lists(
    st.one_of(
        header_lists.map(lambda h: ("headers", h)),
        st.sampled_from([0, 64, 256, 4096]).map(lambda size: ("resize", size)),
        fields.map(lambda f: ("secret", [NeverIndexedHeaderTuple(*f)])),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_same_blocks_and_lists_as_hpack(sequence):
    plain, caching = Encoder(), CachingEncoder()
    reference, decoder = Decoder(), CachingDecoder()
    for kind, value in sequence:
        if kind == "resize":
            if value == plain.header_table_size:
                continue  # hpack itself loses a pending update on a same-size resize
            plain.header_table_size = value
            caching.header_table_size = value
            continue
        block = plain.encode(list(value))
        assert caching.encode(list(value)) == block
        expected = reference.decode(block, raw=True)
        assert decoder.decode(block, raw=True) == expected
        assert [tuple(h) for h in expected] == [tuple(h) for h in value]


def test_repeats_come_from_the_cache():
    encoder, decoder = CachingEncoder(), CachingDecoder()
    headers = [(b":status", b"200"), (b"etag", b'"abc"'), (b"x-a", b"1")]
    first = encoder.encode(headers)  # adds the fields to the table
    second = encoder.encode(headers)  # all indexed now: remembered
    assert encoder._blocks and second != first
    assert encoder.encode(headers) == second
    assert decoder.decode(first, raw=True) == decoder.decode(second, raw=True)
    assert decoder._lists


def test_install_keeps_the_connections_state():
    import h2.config
    import h2.connection

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.decoder.max_header_list_size = 1234
    install(conn)
    assert isinstance(conn.encoder, CachingEncoder)
    assert isinstance(conn.decoder, CachingDecoder)
    assert conn.decoder.max_header_list_size == 1234


def test_a_never_indexed_field_is_not_answered_from_a_plain_block() -> None:
    """A list equal (as tuples) to a remembered one but with a never-indexed field is
    coded by hpack. (A remembered block left the table alone, so its fields are indexed,
    which hpack does for never-indexed fields too, or did not fit the table: then hpack
    codes the never-indexed one differently, as here with a table of size 0.)"""
    plain, caching = Encoder(), CachingEncoder()
    plain.header_table_size = caching.header_table_size = 0
    headers = [(b":status", b"200"), (b"x-a", b"1")]
    for _ in range(3):
        assert caching.encode(list(headers)) == plain.encode(list(headers))
    assert caching._blocks
    secret = [headers[0], NeverIndexedHeaderTuple(*headers[1])]
    assert caching.encode(secret) == plain.encode(secret)
