"""A whole HTTP/2 response (HEADERS, then DATA) framed as bytes, with h2's state kept.

Framing a small response through ``h2`` costs one frame object per frame (a
``HeadersFrame``, a ``DataFrame``, a second empty ``DataFrame`` for END_STREAM), each
with its flag set, its serialisation and its checks, plus h2's header encoding and
validation plumbing: about a third of the server's CPU for a 1 KiB file over HTTP/2.
Yet a frame is a 9-byte header and a payload (RFC 9113 section 4.1), and a response
that is complete when it is framed needs only two: HEADERS with the HPACK block, and
one DATA frame carrying the body and END_STREAM.

:func:`send_response` does what ``send_headers`` then ``send_data`` (or ``end_stream``)
do on an h2 server connection, in h2's order, with h2's own parts where they hold state:

* the same inputs into h2's connection and stream state machines (so the stream is
  half-closed or closed exactly as if h2 had sent the frames, and an illegal send
  raises h2's ``ProtocolError`` before anything is encoded);
* the header block from the connection's own HPACK encoder (the compression context
  stays in step with the peer's decoder), split into CONTINUATION frames beyond the
  peer's ``SETTINGS_MAX_FRAME_SIZE`` as h2 splits it (at the stream's copy of it);
* the stream's and the connection's outbound flow-control windows debited by the body;
* the frames appended to h2's own output buffer, after whatever h2 queued before, so
  ``data_to_send()`` returns every frame in the order it was produced.

Only final responses (no 1xx), without padding or priority, on a connection whose
outbound normalisation and validation are off (the caller normalises: see
``CaddyH2Connection.writeHeaders``); the caller checks the body fits one frame and the
window. h2 names used that are not its documented API (``state_machine`` of the
connection and of each stream, the streams' ``outbound_flow_control_window`` and
``max_outbound_frame_size``, ``_data_to_send``) are checked by
``tests/h2/test_private_api.py``; the frames are compared byte for byte with h2's own
in ``tests/h2/test_h2frames.py``.
"""

from __future__ import annotations

import struct
from typing import Any

from h2.connection import ConnectionInputs, ConnectionState
from h2.stream import StreamInputs

#: RFC 9113 section 4.1: 24-bit length, type, flags, 31-bit stream identifier.
_FRAME_HEADER = struct.Struct(">HBBBL")

DATA = 0x0
HEADERS = 0x1
CONTINUATION = 0x9
END_STREAM = 0x1
END_HEADERS = 0x4

#: The connection state in which sending HEADERS or DATA changes nothing (h2's table:
#: ``(SERVER_OPEN, SEND_HEADERS|SEND_DATA) -> (no action, SERVER_OPEN)``), so the input is
#: only fed to h2's machine in other states (where it raises, or moves it, as in h2).
_OPEN = ConnectionState.SERVER_OPEN
_SEND_HEADERS_FRAME = ConnectionInputs.SEND_HEADERS
_SEND_DATA_FRAME = ConnectionInputs.SEND_DATA
_SEND_HEADERS = StreamInputs.SEND_HEADERS
_SEND_DATA = StreamInputs.SEND_DATA
_SEND_END_STREAM = StreamInputs.SEND_END_STREAM


def frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    """The 9 bytes in front of every frame's payload."""
    return _FRAME_HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id & 0x7FFFFFFF)


def header_frames(stream_id: int, block: bytes, max_frame: int, flags: int) -> list[bytes]:
    """HEADERS (with ``flags``, END_HEADERS added when the block fits) and as many
    CONTINUATION frames as a block longer than ``max_frame`` needs, header and payload
    as separate pieces."""
    if len(block) <= max_frame:
        return [frame_header(len(block), HEADERS, flags | END_HEADERS, stream_id), block]
    pieces = [block[at : at + max_frame] for at in range(0, len(block), max_frame)]
    out = [frame_header(len(pieces[0]), HEADERS, flags, stream_id), pieces[0]]
    for piece in pieces[1:-1]:
        out += [frame_header(len(piece), CONTINUATION, 0, stream_id), piece]
    last = pieces[-1]
    out += [frame_header(len(last), CONTINUATION, END_HEADERS, stream_id), last]
    return out


def send_response(
    conn: Any, stream_id: int, headers: list[Any], body: bytes, *, end_stream: bool
) -> None:
    """``conn.send_headers(stream_id, headers)`` then, for a body,
    ``conn.send_data(stream_id, body, end_stream=end_stream)`` (without a body and with
    ``end_stream``: the HEADERS frame ends the stream), as h2 would do them (see the
    module docstring). ``headers`` are a final response's, already normalised; ``body``
    fits one frame and the stream's window. Raises h2's ``ProtocolError`` (nothing
    sent, nothing encoded) when h2 would."""
    stream = conn.streams[stream_id]
    machine = stream.state_machine
    connection = conn.state_machine
    if connection.state is not _OPEN:
        connection.process_input(_SEND_HEADERS_FRAME)
    machine.process_input(_SEND_HEADERS)
    block = conn.encoder.encode(headers)
    size = len(body)
    flags = 0
    if end_stream and not size:
        machine.process_input(_SEND_END_STREAM)
        flags = END_STREAM
    out = header_frames(stream_id, block, stream.max_outbound_frame_size, flags)
    if size:
        if connection.state is not _OPEN:
            connection.process_input(_SEND_DATA_FRAME)
        machine.process_input(_SEND_DATA)
        flags = 0
        if end_stream:
            machine.process_input(_SEND_END_STREAM)
            flags = END_STREAM
        stream.outbound_flow_control_window -= size
        conn.outbound_flow_control_window -= size
        out += [frame_header(size, DATA, flags, stream_id), body]
    conn._data_to_send += b"".join(out)
