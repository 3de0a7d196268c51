"""HTTP/1.1 behaviour of the lean channel (``caddytw.wire.h1``), driven in
memory: real parsing, a StringTransport, a MemoryReactorClock."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web import server

from caddytw.http.body import collect
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource
from caddytw.wire.h1 import FastHTTPChannel, fast_channel_protocol
from tests.support.memory import parse_response


class Echo(LeafResource):
    """Answers ``METHOD path len=N`` once the whole body arrived, and remembers the
    requests it saw."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def render(self, request: Any) -> Any:
        self.seen.append(request)

        def answer(body: bytes) -> None:
            text = b"%s %s len=%d" % (request.method, request.path, len(body))
            request.setHeader(b"content-length", b"%d" % len(text))
            request.write(text)
            request.finish()

        collect(request.body).addCallback(answer)
        return server.NOT_DONE_YET


class Later(LeafResource):
    """Starts a streamed answer and leaves it open (the test writes the rest)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def render(self, request: CaddyRequest) -> Any:
        self.requests.append(request)
        request.write(b"first;")
        return server.NOT_DONE_YET


class Connection:
    """One in-memory connection to a twisted.web Site using the lean channel."""

    def __init__(self, resource: Any, **attrs: Any) -> None:
        self.reactor = MemoryReactorClock()
        site = server.Site(resource, reactor=self.reactor)
        site.requestFactory = CaddyRequest
        site.protocol = fast_channel_protocol  # type: ignore[assignment]
        site.timeOut = attrs.pop("timeout", 60)
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        channel = getattr(self.protocol, "_channel", self.protocol)
        for name, value in attrs.items():
            setattr(channel, name, value)
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        self.protocol.dataReceived(data)
        self.reactor.advance(0)
        out = self.transport.value()
        self.transport.clear()
        return out

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


def responses(raw: bytes) -> list[bytes]:
    """Split concatenated responses that all carry Content-Length."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if b" 100 " in head.split(b"\r\n")[0]:
            length = 0
        out.append(head + b"\r\n\r\n" + rest[:length])
        raw = rest[length:]
    return out


def test_pipelined_requests_answer_in_order() -> None:
    conn = Connection(Echo())
    out = conn.send(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /three HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    bodies = [parse_response(r).body for r in responses(out)]
    assert bodies == [
        b"GET /one len=0",
        b"POST /two len=3",
        b"GET /three len=0",
    ]
    assert not conn.closed


def test_pipelined_requests_split_at_every_byte() -> None:
    conn = Connection(Echo())
    raw = (
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
        b"PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy"
    )
    out = b"".join(conn.send(raw[i : i + 1]) for i in range(len(raw)))
    bodies = [parse_response(r).body for r in responses(out)]
    assert bodies == [b"GET /a len=0", b"PUT /b len=2"]


def test_chunked_request_body() -> None:
    conn = Connection(Echo())
    out = conn.send(
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    assert parse_response(out).body.startswith(b"POST /c len=11")


def test_large_body_arrives_whole() -> None:
    conn = Connection(Echo())
    body = b"z" * 300_000
    out = conn.send(b"PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n" + body)
    assert parse_response(out).body == b"PUT /big len=300000"


def test_expect_100_continue() -> None:
    conn = Connection(Echo())
    first = conn.send(
        b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    out = first[len(b"HTTP/1.1 100 Continue\r\n\r\n") :] + conn.send(b"data")
    assert parse_response(out).body.startswith(b"POST /e len=4")


def test_head_has_no_body() -> None:
    conn = Connection(Echo())
    out = conn.send(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 200")  # the GET's answer follows right away
    assert parse_response(rest).body == b"GET /g len=0"


def test_connection_close_closes() -> None:
    conn = Connection(Echo())
    out = conn.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert parse_response(out).header("connection") == "close"
    assert conn.closed


def test_http_10_closes_after_the_answer() -> None:
    conn = Connection(Echo())
    out = conn.send(b"GET /old HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.0 200")
    assert conn.closed


def test_http_10_keep_alive_with_a_length_stays_open() -> None:
    conn = Connection(Echo())
    out = conn.send(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response = parse_response(out)
    assert response.header("connection") == "keep-alive"
    assert not conn.closed
    assert parse_response(conn.send(b"GET /again HTTP/1.0\r\n\r\n")).body.startswith(b"GET /again")
    assert conn.closed


def test_oversized_headers_get_431() -> None:
    conn = Connection(Echo(), totalHeadersSize=200)
    out = conn.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 400 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")
    assert conn.closed


def test_garbage_gets_400() -> None:
    conn = Connection(Echo())
    out = conn.send(b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert conn.closed


def test_answers_before_garbage_are_still_sent() -> None:
    conn = Connection(Echo())
    out = conn.send(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n\x00garbage\r\n\r\n")
    first, second = responses(out)
    assert parse_response(first).body == b"GET /ok len=0"
    assert second.startswith(b"HTTP/1.1 400 ")
    assert conn.closed


def test_read_header_timeout_drops_a_slow_client() -> None:
    conn = Connection(Echo(), read_header_timeout=5.0)
    conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
    conn.reactor.advance(4)
    assert not conn.closed
    conn.reactor.advance(2)
    assert conn.closed


def test_idle_timeout_closes_an_idle_connection() -> None:
    conn = Connection(Echo(), timeout=30)
    conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.reactor.advance(20)
    assert not conn.closed
    conn.reactor.advance(11)
    assert conn.closed


def test_idle_timeout_spares_a_long_request() -> None:
    later = Later()
    conn = Connection(later, timeout=30)
    assert b"first;" in conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.reactor.advance(100)
    assert not conn.closed
    request = later.requests[0]
    request.write(b"second")
    request.finish()
    assert b"second" in conn.transport.value()


def test_streamed_answer_and_notify_finish_on_disconnect() -> None:
    later = Later()
    conn = Connection(later)
    out = conn.send(b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in out
    request = later.requests[0]
    lost: list[Any] = []
    request.notifyFinish().addErrback(lost.append)
    conn.protocol.connectionLost(Exception("gone"))
    assert len(lost) == 1
    assert request.client_gone


def test_transport_backpressure_reaches_the_request_producer() -> None:
    later = Later()
    conn = Connection(later)
    conn.send(b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n")
    request = later.requests[0]

    class Producer:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def pauseProducing(self) -> None:
            self.calls.append("pause")

        def resumeProducing(self) -> None:
            self.calls.append("resume")

        def stopProducing(self) -> None:
            self.calls.append("stop")

    producer = Producer()
    request.registerProducer(producer, True)
    # What a TCP transport does when its buffer fills and drains again.
    network_side: Any = conn.transport.producer
    network_side.pauseProducing()
    network_side.resumeProducing()
    assert producer.calls == ["pause", "resume"]
    request.unregisterProducer()
    request.finish()
    assert conn.transport.value().endswith(b"0\r\n\r\n")


def test_upgrade_leaves_following_bytes_for_a_takeover() -> None:
    later = Later()
    conn = Connection(later)
    conn.send(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x85frame"
    )
    assert later.requests[0].path == b"/ws"
    conn.protocol.dataReceived(b"more")
    assert b"".join(conn.protocol._dataBuffer) == b"\x81\x85framemore"


def test_refused_upgrade_goes_on_with_http() -> None:
    conn = Connection(Echo())
    out = conn.send(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    bodies = [parse_response(r).body for r in responses(out)]
    assert bodies == [b"GET /ws len=0", b"GET /next len=0"]


def test_h2c_preface_switches_to_http2() -> None:
    import h2.config
    import h2.connection
    import h2.events

    conn = Connection(Echo(), allow_h2c=True)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1,
        [(":method", "GET"), (":path", "/h2"), (":scheme", "http"), (":authority", "a")],
        end_stream=True,
    )
    data = client.data_to_send()
    out = b"".join(conn.send(data[i : i + 7]) for i in range(0, len(data), 7))
    events = client.receive_data(out)
    assert isinstance(conn.protocol, FastHTTPChannel)
    assert conn.protocol._h2 is not None
    status = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert status and dict(status[0].headers)[b":status"] == b"200"
    assert body == b"GET /h2 len=0"


def test_h2c_not_enabled_treats_the_preface_as_a_bad_request() -> None:
    conn = Connection(Echo())
    out = conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") or out.startswith(b"HTTP/1.1 505 ")


def test_access_log_entries_of_one_turn_leave_in_one_write() -> None:
    import io
    import json

    from tests.support.memory import MemoryServer

    config = {
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "listen": [":8080"],
                        "logs": {},
                        "routes": [{"handle": [{"handler": "static_response", "body": "ok"}]}],
                    }
                }
            }
        }
    }
    memory = MemoryServer(config)
    logger: Any = memory.site.caddy_server.access_logger
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    logger.stream = Stream()
    raw = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    memory.raw(raw)  # runs the reactor turn's pending calls
    assert len(writes) == 1
    entries = [json.loads(line) for line in writes[0].splitlines()]
    assert [e["request"]["uri"] for e in entries] == ["/a", "/b"]
    assert all(e["logger"] == "http.log.access" and e["status"] == 200 for e in entries)


def test_not_persistent_closes_after_the_current_answer() -> None:
    later = Later()
    conn = Connection(later)
    conn.send(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    channel = getattr(conn.protocol, "_channel", conn.protocol)
    assert len(channel.requests) == 1
    channel.persistent = False  # what a graceful shutdown does to a busy connection
    assert not conn.closed
    later.requests[0].finish()
    assert conn.closed


def test_pri_method_over_http_11_is_a_request() -> None:
    conn = Connection(Echo())
    out = conn.send(b"PRI /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert parse_response(out).body == b"PRI /x len=0"
    out = conn.send(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    assert parse_response(out).body == b"GET /after len=0"


def test_read_timeout_drops_a_slow_body() -> None:
    conn = Connection(Echo(), read_timeout=10.0)
    conn.send(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn.reactor.advance(6)
    conn.send(b"def")
    assert not conn.closed
    conn.reactor.advance(5)
    assert conn.closed


def test_read_timeout_spares_a_complete_request() -> None:
    later = Later()
    conn = Connection(later, read_timeout=10.0)
    conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.reactor.advance(30)  # the answer takes long: not the client's fault
    assert not conn.closed


def test_nothing_is_answered_after_connection_close() -> None:
    conn = Connection(Echo())
    out = conn.send(
        b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n"
    )
    assert [parse_response(r).body for r in responses(out)] == [b"GET /a len=0"]
    assert conn.closed
