"""The lean upstream client in memory: framing, pooling, stale-connection retry, flow
control and failures, over StringTransports (real parsing, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from caddytw.handlers.reverse_proxy.config import KeepAliveConfig, TransportConfig
from caddytw.handlers.reverse_proxy.lean import (
    SURPLUS_GRACE,
    LeanClient,
    LeanConnection,
    UpstreamResponseError,
)


class Endpoint:
    def __init__(self, dials: list[LeanConnection]) -> None:
        self.dials = dials

    def connect(self, factory: Any) -> Any:
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.dials.append(protocol)
        return succeed(protocol)


class Connector:
    def __init__(self, keepalive: KeepAliveConfig | None = None) -> None:
        self.config = TransportConfig(keepalive=keepalive or KeepAliveConfig())
        self.dials: list[LeanConnection] = []

    def endpoint(self, host: str, port: int) -> Endpoint:
        return Endpoint(self.dials)


class Body:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.reason: Failure | None = None
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason


def setup(keepalive: KeepAliveConfig | None = None) -> tuple[LeanClient, Connector]:
    connector = Connector(keepalive)
    return LeanClient(connector, MemoryReactorClock()), connector


def fetch(client: LeanClient, method: bytes = b"GET", producer: Any = None) -> list[Any]:
    got: list[Any] = []
    d = client.request("127.0.0.1", 8080, method, b"/x?y", Headers({b"X-A": [b"1"]}), producer)
    d.addBoth(got.append)
    return got


def answer(connection: LeanConnection, data: bytes) -> None:
    connection.dataReceived(data)


def written(connection: LeanConnection) -> bytes:
    return connection.transport.value()  # type: ignore[union-attr, no-any-return]


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: up  \r\n\r\nhello"


def test_request_head_is_framed_like_agent():
    client, connector = setup()
    fetch(client, b"POST")
    head = written(connector.dials[0])
    assert head == (
        b"POST /x?y HTTP/1.1\r\nContent-Length: 0\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\n\r\n"
    )


@given(st.binary(max_size=30))
def test_a_target_with_a_control_byte_or_space_is_refused(target: bytes) -> None:
    """Never a request line an upstream could split: any byte up to space, or DEL,
    in the target refuses the request (Go's ``validPath``-like check, as before)."""
    client, _ = setup()
    refused = any(byte <= 0x20 or byte == 0x7F for byte in target)
    try:
        head = client.head(b"GET", target, Headers(), b"up", 0)
    except ValueError:
        assert refused
    else:
        assert not refused and head.split(b" ")[1].lstrip(b"/") == target.lstrip(b"/")


def test_response_head_body_and_connection_reuse():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK[:20])
    assert got == []
    answer(connection, OK[20:-2])
    response = got[0]
    assert (response.code, response.length) == (200, 5)
    assert response.headers.getRawHeaders(b"server") == [b"up"]  # trailing OWS trimmed
    body = Body()
    response.deliverBody(body)
    answer(connection, OK[-2:])
    assert b"".join(body.data) == b"hello" and body.reason.check(ResponseDone)
    again = fetch(client)
    assert len(connector.dials) == 1  # reused from the pool
    answer(connection, OK)
    assert again[0].code == 200


def test_non_persistent_config_closes_after_each_answer():
    client, connector = setup(KeepAliveConfig(enabled=False))
    got = fetch(client)
    connection = connector.dials[0]
    assert b"Connection: close\r\n" in written(connection)
    answer(connection, OK)
    got[0].deliverBody(Body())
    assert connection.transport.disconnecting  # type: ignore[union-attr]
    fetch(client)
    assert len(connector.dials) == 2


def test_head_answer_has_no_body_and_the_connection_stays_usable():
    client, connector = setup()
    got = fetch(client, b"HEAD")
    connection = connector.dials[0]
    answer(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert got[0].length == 0
    body = Body()
    got[0].deliverBody(body)
    assert body.data == [] and body.reason.check(ResponseDone)
    again = fetch(client)
    answer(connection, OK)
    assert len(connector.dials) == 1 and again[0].code == 200


def test_informational_answers_are_skipped():
    client, connector = setup()
    got = fetch(client)
    answer(connector.dials[0], b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    assert got[0].code == 200


def test_unknown_length_body_ends_with_the_connection():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, b"HTTP/1.1 200 OK\r\n\r\nsome")
    assert got[0].length is UNKNOWN_LENGTH
    body = Body()
    got[0].deliverBody(body)
    answer(connection, b" more")
    connection.connectionLost(Failure(ConnectionError()))
    assert b"".join(body.data) == b"some more" and body.reason.check(PotentialDataLoss)


def test_chunked_body_is_decoded_and_reuses_the_connection():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    body = Body()
    got[0].deliverBody(body)
    answer(connection, b"0\r\n\r\n")
    assert body.data == [b"abc"] and body.reason.check(ResponseDone)
    fetch(client)
    assert len(connector.dials) == 1


def test_malformed_answer_fails_the_request():
    client, connector = setup()
    got = fetch(client)
    answer(connector.dials[0], b"NOT HTTP AT ALL\r\n\r\n")
    assert isinstance(got[0], Failure) and got[0].check(UpstreamResponseError)


def test_body_cut_short_fails_the_body():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK[:-3])
    body = Body()
    got[0].deliverBody(body)
    connection.connectionLost(Failure(ConnectionError()))
    assert body.reason.check(UpstreamResponseError)


@pytest.mark.parametrize("method, retried", [(b"GET", True), (b"POST", False)])
def test_stale_pooled_connection_is_retried_once_for_idempotent_requests(method, retried):
    client, connector = setup()
    earlier = fetch(client)
    first = connector.dials[0]
    answer(first, OK)
    earlier[0].deliverBody(Body())
    got = fetch(client, method)
    assert len(connector.dials) == 1  # the pooled connection was taken
    first.connectionLost(Failure(ConnectionError()))  # closed before any byte came back
    if retried:
        assert len(connector.dials) == 2 and got == []  # redialed, not failed
        answer(connector.dials[1], OK)
        assert got[0].code == 200
    else:
        assert len(connector.dials) == 1 and got[0].check(UpstreamResponseError)


def test_fresh_connection_closed_before_answer_is_not_retried():
    client, connector = setup()
    got = fetch(client)
    connector.dials[0].connectionLost(Failure(ConnectionError()))
    assert len(connector.dials) == 1 and got[0].check(UpstreamResponseError)


def test_flow_control_reaches_the_socket_and_ends_with_the_response():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK[:-5])
    body = Body()
    got[0].deliverBody(body)
    body.transport.pauseProducing()
    assert connection.transport.producerState == "paused"  # type: ignore[union-attr]
    answer(connection, OK[-5:])
    # Pooled again: reading resumed, and the old body's producer no longer acts on it.
    assert connection.transport.producerState == "producing"  # type: ignore[union-attr]
    body.transport.pauseProducing()
    body.transport.stopProducing()
    assert connection.transport.producerState == "producing"  # type: ignore[union-attr]
    assert not connection.transport.disconnecting  # type: ignore[union-attr]


def test_stop_producing_drops_the_connection():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK[:-5])
    body = Body()
    got[0].deliverBody(body)
    body.transport.stopProducing()
    assert connection.transport.disconnecting  # type: ignore[union-attr]
    connection.connectionLost(Failure(ConnectionError()))
    assert body.reason.check(UpstreamResponseError)
    fetch(client)
    assert len(connector.dials) == 2


def test_cancel_before_the_answer_drops_the_connection():
    client, connector = setup()
    d = client.request("127.0.0.1", 8080, b"GET", b"/", Headers())
    d.addErrback(lambda _: None)
    d.cancel()
    assert connector.dials[0].transport.disconnecting  # type: ignore[union-attr]


def test_idle_connections_time_out():
    client, connector = setup(KeepAliveConfig(idle_timeout=5))
    got = fetch(client)
    answer(connector.dials[0], OK)
    got[0].deliverBody(Body())
    client.reactor.advance(6)
    assert connector.dials[0].transport.disconnecting  # type: ignore[union-attr]


def test_invalid_target_is_refused():
    client, _ = setup()
    with pytest.raises(ValueError):
        client.request("127.0.0.1", 1, b"GET", b"/a b", Headers())


def test_surplus_idle_connections_serve_the_next_burst_then_close():
    """Beyond max_idle_conns_per_host a released connection waits SURPLUS_GRACE for
    the next burst of requests instead of closing at once (no re-dial), then closes;
    the ones within the limit wait the idle timeout."""
    client, connector = setup(KeepAliveConfig(max_idle_conns_per_host=1, idle_timeout=60))
    for _ in range(2):
        pending = [fetch(client) for _ in range(3)]
        assert len(connector.dials) == 3  # the second burst dialed nothing
        for connection in connector.dials:
            answer(connection, OK)
        for got in pending:
            got[0].deliverBody(Body())
        assert not any(c.transport.disconnecting for c in connector.dials)  # type: ignore[union-attr]
    client.reactor.advance(SURPLUS_GRACE + 0.5)
    closed = [c.transport.disconnecting for c in connector.dials]  # type: ignore[union-attr]
    assert sorted(closed) == [False, True, True]
    client.reactor.advance(60)
    assert all(c.transport.disconnecting for c in connector.dials)  # type: ignore[union-attr]


def test_a_whole_answer_is_handed_over_complete_and_pools_the_connection():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK)
    assert got[0].complete_body() == b"hello"
    fetch(client)
    assert len(connector.dials) == 1  # back in the pool without a body protocol


def test_a_partial_answer_is_not_complete_and_is_delivered():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK[:-2])
    assert got[0].complete_body() is None
    body = Body()
    got[0].deliverBody(body)
    answer(connection, OK[-2:])
    assert b"".join(body.data) == b"hello" and body.reason.check(ResponseDone)


def test_a_head_answer_is_complete_and_empty():
    client, connector = setup()
    got = fetch(client, b"HEAD")
    answer(connector.dials[0], b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert got[0].complete_body() == b""
    fetch(client)
    assert len(connector.dials) == 1


def test_garbage_after_a_whole_answer_keeps_the_answer_and_drops_the_connection():
    client, connector = setup()
    got = fetch(client)
    connection = connector.dials[0]
    answer(connection, OK + b"garbage\r\n\r\n")
    assert got[0].complete_body() == b"hello"
    assert connection.transport.disconnecting  # type: ignore[union-attr]
    fetch(client)
    assert len(connector.dials) == 2  # never pooled


class Receiver:
    """What the proxy's attempts are to the client: called directly, no Deferred."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def upstream_connected(self, connection: Any) -> None:
        self.events.append(("connected", connection))

    def upstream_answered(self, response: Any) -> None:
        self.events.append(("answered", response))

    def upstream_failed(self, reason: Failure) -> None:
        self.events.append(("failed", reason))


def test_send_calls_the_receiver_directly():
    client, connector = setup()
    receiver = Receiver()
    client.send("127.0.0.1", 8080, b"GET", b"/", Headers(), None, receiver)
    connection = connector.dials[0]
    assert receiver.events == [("connected", connection)]
    answer(connection, OK)
    kind, response = receiver.events[1]
    assert kind == "answered" and response.code == 200 and len(receiver.events) == 2


def test_cancelling_a_sent_exchange_fails_it_once_and_drops_the_connection():
    client, connector = setup()
    receiver = Receiver()
    exchange = client.send("127.0.0.1", 8080, b"GET", b"/", Headers(), None, receiver)
    exchange.cancel()
    exchange.cancel()
    answer(connector.dials[0], OK)  # too late: nobody hears of it
    assert [kind for kind, _ in receiver.events] == ["connected", "failed"]
    assert receiver.events[1][1].check(CancelledError)
    assert connector.dials[0].transport.disconnecting  # type: ignore[union-attr]


def test_idle_time_counts_from_the_last_release():
    client, connector = setup(KeepAliveConfig(idle_timeout=5))
    for _ in range(3):  # used again before its timer would have fired, each time
        got = fetch(client)
        answer(connector.dials[0], OK)
        assert got[0].complete_body() == b"hello"
        client.reactor.advance(4)
    assert not connector.dials[0].transport.disconnecting  # type: ignore[union-attr]
    client.reactor.advance(1.5)  # 5.5 s idle since the last release
    assert connector.dials[0].transport.disconnecting  # type: ignore[union-attr]
    assert len(connector.dials) == 1
