"""Request bodies on the lean HTTP/1.1 channel, in memory (issue 13 findings 1-3, issue
12 item 5): dispatch at the end of the head, ``100 Continue`` only when the handler
reads, backpressure, the body limit, draining what a handler left unread, Upgrade and
CONNECT bodies read as bodies, trailers never request headers."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.web import server

from caddytw.http.body import (
    HIGH_WATER,
    BodyAborted,
    BodyTooLarge,
    RequestBody,
    ThreadReader,
    collect,
)
from caddytw.http.dispatch import fail
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource
from caddytw.wire.h1 import BODY_MIN_RATE, BODY_RATE_WINDOW
from tests.fast.test_channels import Connection, Echo, responses
from tests.support.memory import parse_response


class Refuse(LeafResource):
    """Answers 401 without touching the body (an authentication handler)."""

    def __init__(self) -> None:
        self.seen: list[CaddyRequest] = []

    def render(self, request: CaddyRequest) -> bytes:
        self.seen.append(request)
        request.setResponseCode(401)
        request.setHeader(b"content-length", b"6")
        return b"denied"


class Hold(LeafResource):
    """Starts reading the body, then stops taking it (a slow upstream)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.ended: list[BaseException | None] = []
        self.request: Any = None

    def render(self, request: CaddyRequest) -> Any:
        self.request = request
        request.body.start(self)
        request.body.pauseProducing()
        return server.NOT_DONE_YET

    def body_data(self, data: bytes) -> None:
        self.received.append(data)

    def body_end(self, error: BaseException | None) -> None:
        self.ended.append(error)


class Failing(Echo):
    """Echo that answers errors through ``dispatch.fail`` (413 for a body too large)."""

    def render(self, request: Any) -> Any:
        self.seen.append(request)

        def answer(body: bytes) -> None:
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

        collect(request.body).addCallbacks(answer, lambda failure: fail(request, failure))
        return server.NOT_DONE_YET


def test_upgrade_request_body_is_read_as_a_body_not_as_a_request() -> None:
    echo = Echo()
    conn = Connection(echo)
    hidden = b"GET /SMUGGLED HTTP/1.1\r\nHost: other\r\n\r\n"
    out = conn.send(
        b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
        b"Content-Length: %d\r\n\r\n" % len(hidden) + hidden
    )
    assert [parse_response(r).body for r in responses(out)] == [b"POST /up len=%d" % len(hidden)]
    assert [r.path for r in echo.seen] == [b"/up"]
    out = conn.send(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert parse_response(out).body == b"GET /next len=0"


def test_connect_body_is_read_as_a_body() -> None:
    echo = Echo()
    conn = Connection(echo)
    hidden = b"GET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n"
    out = conn.send(
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: %d\r\n\r\n" % len(hidden)
    )
    out += conn.send(hidden[:10])
    out += conn.send(hidden[10:])
    assert len(responses(out)) == 1
    assert [r.method for r in echo.seen] == [b"CONNECT"]


def test_trailers_do_not_become_request_headers() -> None:
    echo = Echo()
    conn = Connection(echo)
    out = conn.send(
        b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nHost: evil\r\nX-Forwarded-For: 1.2.3.4\r\nAuthorization: x\r\n\r\n"
    )
    assert parse_response(out).body == b"POST /t len=3"
    headers = echo.seen[0].requestHeaders
    assert headers.getRawHeaders(b"host") == [b"a"]
    assert not headers.hasHeader(b"x-forwarded-for")
    assert not headers.hasHeader(b"authorization")


def test_handler_runs_before_the_body_arrives() -> None:
    hold = Hold()
    conn = Connection(hold)
    conn.send(b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    assert hold.request is not None and hold.request.body.received == 0
    hold.request.body.resumeProducing()
    conn.send(b"0123456789")
    assert b"".join(hold.received) == b"0123456789" and hold.ended == [None]


def test_refusing_handler_never_invites_the_body() -> None:
    conn = Connection(Refuse())
    out = conn.send(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4000000000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert b"100 Continue" not in out
    response = parse_response(out)
    assert response.status == 401
    assert response.header("connection") == "close"
    assert conn.closed


def test_reading_handler_gets_100_continue() -> None:
    hold = Hold()
    conn = Connection(hold)
    out = conn.send(
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    assert out == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_unread_small_body_is_drained_and_the_connection_kept() -> None:
    refuse = Refuse()
    conn = Connection(refuse)
    out = conn.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    assert parse_response(out).status == 401
    out = conn.send(b"x" * 990 + b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert parse_response(out).status == 401
    assert [r.path for r in refuse.seen] == [b"/a", b"/b"]
    assert not conn.closed


def test_unread_large_body_closes_the_connection() -> None:
    conn = Connection(Refuse())
    out = conn.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 300000000\r\n\r\n" + b"x" * 10)
    response = parse_response(out)
    assert response.status == 401 and response.header("connection") == "close"
    assert conn.closed


def test_a_body_the_handler_does_not_take_pauses_the_socket() -> None:
    hold = Hold()
    conn = Connection(hold)
    conn.send(b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
    assert conn.transport.producerState == "producing"
    conn.send(b"y" * (HIGH_WATER + 1))
    assert conn.transport.producerState == "paused"
    hold.request.body.resumeProducing()
    assert conn.transport.producerState == "producing"
    assert sum(map(len, hold.received)) == HIGH_WATER + 1


def test_body_over_the_server_limit_is_refused_without_reading() -> None:
    failing = Failing()
    conn = Connection(failing, max_body_bytes=100)
    out = conn.send(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n")
    response = parse_response(out)
    assert response.status == 413 and response.header("connection") == "close"


def test_chunked_body_stops_at_the_server_limit() -> None:
    failing = Failing()
    conn = Connection(failing, max_body_bytes=100)
    out = conn.send(
        b"POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"40\r\n" + b"z" * 64 + b"\r\n40\r\n" + b"z" * 64 + b"\r\n"
    )
    assert parse_response(out).status == 413
    assert conn.send(b"0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == b""


def test_a_trickled_body_is_dropped() -> None:
    hold = Hold()
    conn = Connection(hold)
    conn.send(b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
    hold.request.body.resumeProducing()
    for _ in range(int(BODY_RATE_WINDOW) * 2 + 2):
        conn.send(b"x")
        conn.reactor.advance(1)
    assert conn.closed
    assert isinstance(hold.ended[0], BodyAborted)


def test_a_steady_body_is_not_dropped() -> None:
    hold = Hold()
    conn = Connection(hold)
    conn.send(b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
    hold.request.body.resumeProducing()
    for _ in range(int(BODY_RATE_WINDOW) * 3):
        conn.send(b"x" * (BODY_MIN_RATE + 10))
        conn.reactor.advance(1)
    assert not conn.closed and hold.ended == []


def test_time_the_server_stopped_reading_does_not_count() -> None:
    hold = Hold()
    conn = Connection(hold)
    conn.send(b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
    conn.send(b"y" * (HIGH_WATER + 1))  # the handler takes nothing: the socket pauses
    conn.reactor.advance(BODY_RATE_WINDOW * 5)
    assert not conn.closed


def test_chunked_upgrade_body_is_refused() -> None:
    echo = Echo()
    conn = Connection(echo)
    out = conn.send(
        b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"22\r\nGET /SMUGGLED HTTP/1.1\r\nHost: b\r\n\r\n\r\n0\r\n\r\n"
    )
    assert [parse_response(r).status for r in responses(out)] == [400]
    assert echo.seen == []


class Stating(Failing):
    """Reads the body under a limit of its own, as ``file_sync``'s ``max_upload_size``."""

    def __init__(self, *limits: int | None) -> None:
        super().__init__()
        self.limits = limits

    def render(self, request: Any) -> Any:
        for limit in self.limits:
            request.body.limit_to(limit)
        return super().render(request)


def test_a_handler_limit_raises_the_server_default_for_its_route() -> None:
    # max_request_body is the default for routes that state none: a handler's own limit
    # replaces it, above or below (Caddy has only per-route request_body limits).
    for framing in (b"Content-Length: 150\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n"):
        conn = Connection(Stating(200), max_body_bytes=100)
        body = b"q" * 150
        if b"chunked" in framing:
            body = b"96\r\n" + body + b"\r\n0\r\n\r\n"
        out = conn.send(b"POST /big HTTP/1.1\r\nHost: a\r\n" + framing + body)
        response = parse_response(out)
        assert response.status == 200 and response.body == b"q" * 150


def test_stated_limits_keep_the_lowest_and_none_lifts_the_default() -> None:
    conn = Connection(Stating(200, 120), max_body_bytes=100)
    out = conn.send(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 150\r\n\r\n")
    assert parse_response(out).status == 413
    conn = Connection(Stating(None), max_body_bytes=100)
    out = conn.send(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 150\r\n\r\n" + b"q" * 150)
    assert parse_response(out).status == 200
    conn = Connection(Stating(50, None), max_body_bytes=100)
    out = conn.send(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 60\r\n\r\n")
    assert parse_response(out).status == 413


class Immediate:
    """A reactor whose ``callFromThread`` runs at once (the reader runs on this thread)."""

    def callFromThread(self, f: Any, *args: Any) -> None:
        f(*args)


def test_thread_reader_batches_and_holds_the_body_back() -> None:
    body = RequestBody(None, None, None)
    for _ in range(30):
        body.feed(b"x" * 100)
    reader = ThreadReader(body, Immediate(), high=1000, batch=300)
    assert not body.started  # asked for on the first read only
    sizes = []
    for _ in range(3):
        sizes.append(len(reader.read(10_000)))
        assert reader._queued <= 1100  # the body was paused past ``high``
    assert sizes == [1100, 1100, 800]
    body.finish()
    assert reader.read(10_000) == b""


def test_thread_reader_raises_what_ended_the_body() -> None:
    body = RequestBody(None, None, None)
    body.limit_to(500)
    reader = ThreadReader(body, Immediate(), high=1000, batch=300)
    body.feed(b"y" * 200)
    assert reader.read(150) == b"y" * 150
    body.feed(b"y" * 400)
    with pytest.raises(BodyTooLarge):
        reader.read(1000)
