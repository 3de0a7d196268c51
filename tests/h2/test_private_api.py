"""The private twisted names ``caddytw.wire.h2`` relies on still exist (twisted is
pinned below 27; this fails first if an upgrade renames them), and the lean channel
switches to our HTTP/2 connection."""

from __future__ import annotations

import inspect

from twisted.internet.task import Clock
from twisted.web import _http2

from caddytw.wire import h1 as fastchannel
from caddytw.wire import h2


def test_private_twisted_names_exist() -> None:
    assert _http2._END_STREAM_SENTINEL is h2._END_STREAM_SENTINEL
    for method in (
        "_sendPrioritisedData",
        "_requestDone",
        "_handleWindowUpdate",
        "_requestDataReceived",
        "_requestEnded",
        "_requestAborted",
        "_handlePriorityUpdate",
        "_terminate",
        "_tryToWriteControlData",
        "_send100Continue",
        "_respondToBadRequestAndDisconnect",
        "abortRequest",
    ):
        assert callable(getattr(_http2.H2Connection, method))
    connection = _http2.H2Connection(Clock())
    for attribute in (
        "_stillProducing",
        "_consumerBlocked",
        "_sendingDeferred",
        "_outboundStreamQueues",
        "_reactor",
        "_streamCleanupCallbacks",
        "priority",
        "conn",
        "streams",
    ):
        assert hasattr(connection, attribute), attribute
    # H2Stream pauses/resumes its producer through these two public-ish hooks.
    assert callable(_http2.H2Stream.windowUpdated)
    assert callable(_http2.H2Stream.flowControlBlocked)
    # CaddyH2Stream replaces the header conversion and uses these.
    for method in ("_convertHeaders", "_send100Continue", "requestComplete"):
        assert callable(getattr(_http2.H2Stream, method)), method


def test_the_channel_switches_to_caddy_h2_connection() -> None:
    assert "CaddyH2Connection" in inspect.getsource(fastchannel.FastHTTPChannel._switch_to_h2)


def test_private_h2_names_exist() -> None:
    """What ``caddytw.wire.h2frames`` uses of h2 beyond its documented API."""
    import h2.config
    import h2.connection
    from h2.connection import ConnectionInputs, ConnectionState
    from h2.stream import StreamInputs

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1, [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")]
    )
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    conn.receive_data(client.data_to_send())
    assert isinstance(conn._data_to_send, bytearray)
    assert callable(conn.state_machine.process_input)
    assert isinstance(conn.outbound_flow_control_window, int)
    stream = conn.streams[1]
    assert callable(stream.state_machine.process_input)
    assert isinstance(stream.outbound_flow_control_window, int)
    assert stream.max_outbound_frame_size == conn.max_outbound_frame_size
    for name in ("SEND_HEADERS", "SEND_DATA"):
        assert hasattr(ConnectionInputs, name)
    for name in ("SEND_HEADERS", "SEND_DATA", "SEND_END_STREAM"):
        assert hasattr(StreamInputs, name)
    # h2frames skips the connection machine where its input changes nothing.
    table = h2.connection.H2ConnectionStateMachine._transitions
    for name in ("SEND_HEADERS", "SEND_DATA"):
        key = (ConnectionState.SERVER_OPEN, getattr(ConnectionInputs, name))
        assert table[key] == (None, ConnectionState.SERVER_OPEN)


def test_private_priority_names_exist() -> None:
    """``CaddyH2Connection._requestDone`` asks the priority tree's stream map first."""
    import priority

    tree = priority.PriorityTree()
    tree.insert_stream(1)
    tree.insert_stream(5, depends_on=3)  # (3 enters the tree as 5's parent)
    assert set(tree._streams) == {0, 1, 3, 5}
    tree.remove_stream(1)
    assert 1 not in tree._streams


def test_private_h2_names_for_receiving_exist() -> None:
    """What ``caddytw.wire.h2receive`` uses of h2 beyond its documented API."""
    import h2.config
    import h2.connection
    from h2.connection import AllowedStreamIDs, ConnectionInputs, ConnectionState
    from h2.stream import StreamInputs

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    buffer = conn.incoming_buffer
    assert isinstance(buffer._data, bytearray)
    assert buffer._headers_buffer == []
    assert buffer._preamble_len == 24
    for method in ("_begin_new_stream", "_terminate_connection"):
        assert callable(getattr(conn, method)), method
    assert callable(h2.connection._decode_headers)
    assert AllowedStreamIDs.ODD == 1
    stream = conn._begin_new_stream(1, AllowedStreamIDs.ODD)
    assert callable(stream.state_machine.process_input)
    assert callable(stream.receive_headers)
    assert stream._expected_content_length is None
    for name in ("RECV_HEADERS", "RECV_END_STREAM"):
        assert hasattr(StreamInputs, name)
    # h2receive skips the connection machine where its input changes nothing.
    table = h2.connection.H2ConnectionStateMachine._transitions
    key = (ConnectionState.SERVER_OPEN, ConnectionInputs.RECV_HEADERS)
    assert table[key] == (None, ConnectionState.SERVER_OPEN)


def test_received_frames_are_formatted_only_when_logged() -> None:
    """h2.connection's one ``repr`` call (the received-frame trace log) is deferred, and
    gives the frame's own repr when a configured logger formats it."""
    import logging

    import h2.connection
    from hyperframe.frame import PingFrame

    source = inspect.getsource(h2.connection)
    assert source.count("repr(") == 1
    assert 'logger.trace("Received frame: %s", repr(frame))' in source
    frame = PingFrame(0)
    deferred = h2.connection.repr(frame)  # type: ignore[attr-defined]
    assert str(deferred) == repr(frame)
    assert logging.LogRecord(
        "h2", 5, "", 0, "Received frame: %s", (deferred,), None
    ).getMessage() == (f"Received frame: {frame!r}")
