"""``caddytw.wire.h2frames.send_response`` against h2 itself: for any response (header
lists that need CONTINUATION frames, bodies from empty to one frame, ending the stream
or not, requests still sending a body), the same bytes on the wire as h2's
``send_headers`` + ``send_data``, and the same h2 state afterwards (stream states,
flow-control windows, HPACK context, what h2 allows next)."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.exceptions
import pytest
from h2.settings import SettingCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.wire import h2frames

REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "x")]


def server(preface: bytes) -> h2.connection.H2Connection:
    """An h2 server configured as ``CaddyH2Connection`` configures its own."""
    config = h2.config.H2Configuration(
        client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.receive_data(preface)
    conn.data_to_send()
    return conn


def client_preface(max_frame: int, window: int, streams: list[tuple[int, bool]]) -> bytes:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            SettingCodes.MAX_FRAME_SIZE: max_frame,
            SettingCodes.INITIAL_WINDOW_SIZE: window,
        },
    )
    client.initiate_connection()
    for stream_id, ended in streams:
        client.send_headers(stream_id, REQUEST, end_stream=ended)
    return client.data_to_send()


def state(conn: h2.connection.H2Connection) -> Any:
    table = conn.encoder.header_table
    return (
        conn.state_machine.state,
        conn.outbound_flow_control_window,
        {
            sid: (s.state_machine.state, s.outbound_flow_control_window, s.open, s.closed)
            for sid, s in conn.streams.items()
        },
        list(table.dynamic_entries),
        table.maxsize,
    )


# (header blocks long enough for CONTINUATION frames: the test after this one)
field = st.tuples(
    st.sampled_from([b"content-type", b"etag", b"x-a", b"set-cookie"]),
    st.binary(max_size=300).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b"")),
)
response = st.tuples(
    st.sampled_from([b"200", b"204", b"404", b"500"]),
    st.lists(field, max_size=8),
    st.integers(min_value=0, max_value=2000),
    st.booleans(),  # end the stream
)


@settings(max_examples=100, deadline=None)
@given(
    max_frame=st.sampled_from([16_384, 16_385, 20_000]),
    ended=st.lists(st.booleans(), min_size=1, max_size=3),
    answers=st.lists(response, min_size=1, max_size=3),
)
def test_byte_identical_to_h2(max_frame: int, ended: list[bool], answers: list[Any]) -> None:
    streams = [(2 * i + 1, e) for i, e in enumerate(ended)]
    preface = client_preface(max_frame, 65_535, streams)
    theirs, ours = server(preface), server(preface)
    for (stream_id, _), (status, fields, size, end) in zip(streams, answers, strict=False):
        headers = [(b":status", status), *fields]
        body = bytes(range(256)) * (size // 256) + bytes(size % 256)
        body = body[: ours.max_outbound_frame_size]
        theirs.send_headers(stream_id, headers, end_stream=end and not body)
        if body:
            theirs.send_data(stream_id, body, end_stream=end)
        h2frames.send_response(ours, stream_id, headers, body, end_stream=end)
        assert ours.data_to_send() == theirs.data_to_send()
        assert state(ours) == state(theirs)
    # Both refuse, or both allow, what comes next on every stream.
    for stream_id, _ in streams:
        outcomes = []
        for conn in (theirs, ours):
            try:
                conn.send_data(stream_id, b"more", end_stream=True)
                outcomes.append(conn.data_to_send())
            except h2.exceptions.ProtocolError as error:
                outcomes.append(type(error))
        assert outcomes[0] == outcomes[1]


def test_h2_refusals_are_kept() -> None:
    """A stream already ended, or reset, is refused exactly as h2 refuses it, and nothing
    reaches the wire."""
    preface = client_preface(16_384, 65_535, [(1, True), (3, True)])
    conn = server(preface)
    h2frames.send_response(conn, 1, [(b":status", b"200")], b"x", end_stream=True)
    conn.data_to_send()
    with pytest.raises(h2.exceptions.StreamClosedError):
        h2frames.send_response(conn, 1, [(b":status", b"200")], b"x", end_stream=True)
    conn.reset_stream(3)
    conn.data_to_send()
    with pytest.raises(h2.exceptions.StreamClosedError):
        h2frames.send_response(conn, 3, [(b":status", b"200")], b"", end_stream=True)
    assert conn.data_to_send() == b""


def test_frame_header_layout() -> None:
    """RFC 9113 section 4.1: 24-bit length, type, flags, reserved bit cleared."""
    assert h2frames.frame_header(0x010203, 0x9, 0x4, 0xFFFFFFFF) == bytes(
        [1, 2, 3, 9, 4, 0x7F, 0xFF, 0xFF, 0xFF]
    )


def test_long_header_blocks_continue_as_h2_continues_them() -> None:
    preface = client_preface(16_384, 65_535, [(1, True)])
    theirs, ours = server(preface), server(preface)
    # Longer than the smallest SETTINGS_MAX_FRAME_SIZE (16 KiB) after Huffman coding.
    headers = [(b":status", b"200"), (b"x-long", b"v" * 40_000), (b"x-b", b"w" * 30_000)]
    theirs.send_headers(1, headers)
    theirs.send_data(1, b"body", end_stream=True)
    h2frames.send_response(ours, 1, headers, b"body", end_stream=True)
    wire = ours.data_to_send()
    assert wire == theirs.data_to_send()
    assert wire[3] == h2frames.HEADERS and wire.count(b"\x09\x00\x00\x00\x00\x01") >= 1
