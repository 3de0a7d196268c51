"""The body producer and the response relay in memory, time passed explicitly."""

from __future__ import annotations

import io

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock, Cooperator
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from zope.interface import implementer

from caddytw.handlers.reverse_proxy.streaming import (
    ReplayableBodyProducer,
    ResponseRelay,
    StreamingBodyProducer,
    body_length,
)
from caddytw.http.body import RequestBody


class Consumer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class ClientRequest:
    """The slice of a twisted.web request the relay uses, recording what it gets."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.producer = None
        self.client_gone = False
        self.startedWriting = False
        self.responseHeaders = Headers({b"Content-Type": [b"text/plain"]})

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data: bytes) -> None:
        self.startedWriting = True
        self.written.append(data)


@implementer(IPushProducer)
class UpstreamTransport:
    """An IPushProducer standing for the upstream socket."""

    def __init__(self) -> None:
        self.stopped = False

    def pauseProducing(self): ...
    def resumeProducing(self): ...

    def stopProducing(self):
        self.stopped = True


def cooperator(clock: Clock) -> Cooperator:
    return Cooperator(scheduler=lambda work: clock.callLater(0, work))


def run(clock: Clock, steps: int = 100) -> None:
    for _ in range(steps):
        clock.advance(0.001)


def test_body_producer_replays_and_never_closes_the_file():
    clock = Clock()
    content = io.BytesIO(b"x" * 200_000)
    written = []
    producer = ReplayableBodyProducer(
        content,
        body_length(content),
        cooperator(clock),
        clock,
        on_written=lambda: written.append(1),
    )
    for _ in range(2):  # a retry sends the same body again
        consumer = Consumer()
        done = producer.startProducing(consumer)
        run(clock)
        assert done.called and consumer.data == b"x" * 200_000
    assert written == [1, 1] and not content.closed


def test_body_producer_write_timeout_stops_a_stalled_upload():
    clock = Clock()
    content = io.BytesIO(b"y" * 500_000)
    producer = ReplayableBodyProducer(
        content, body_length(content), cooperator(clock), clock, write_timeout=2.0
    )
    failures = []
    producer.startProducing(Consumer()).addErrback(failures.append)
    producer.pauseProducing()  # the upstream stops reading
    clock.advance(1.9)
    assert not failures
    clock.advance(0.2)
    assert failures and failures[0].check(ConnectionAbortedError)


def test_streaming_producer_of_a_body_already_whole_returns_a_fired_deferred():
    # The body arrived before the upstream connection was there (a pooled connection is
    # used at once): it is all delivered inside startProducing, which still returns the
    # Deferred (it returned None, a 500 on every reused connection).
    clock = Clock()
    written: list[int] = []
    producer = StreamingBodyProducer(
        RequestBody.of(b"whole"), clock, on_written=lambda: written.append(1)
    )
    consumer = Consumer()
    done = producer.startProducing(consumer)
    results: list[object] = []
    done.addBoth(results.append)
    assert results == [None] and consumer.data == b"whole" and written == [1]


def relay_with(
    request: ClientRequest, clock: Clock, ended: list[object] | None = None, **options
) -> tuple[ResponseRelay, UpstreamTransport]:
    relay = ResponseRelay(request, clock, (ended if ended is not None else []).append, **options)
    transport = UpstreamTransport()
    relay.makeConnection(transport)
    return relay, transport


def test_relay_registers_the_upstream_as_the_client_producer_and_writes_through():
    clock, request = Clock(), ClientRequest()
    done: list[object] = []
    relay, transport = relay_with(request, clock, done)
    assert request.producer is transport
    relay.dataReceived(b"a")
    relay.dataReceived(b"b")
    assert request.written == [b"a", b"b"]
    assert done == []
    relay.connectionLost(Failure(ResponseDone()))
    assert done == [None] and request.producer is None


def test_relay_positive_flush_interval_coalesces_until_the_timer():
    clock, request = Clock(), ClientRequest()
    relay, _ = relay_with(request, clock, flush_interval=0.5)
    relay.dataReceived(b"a")
    relay.dataReceived(b"b")
    assert request.written == []
    clock.advance(0.5)
    assert request.written == [b"ab"]
    relay.dataReceived(b"c" * 40_000)  # past the coalescing limit: out at once
    assert request.written[-1].endswith(b"c")


def test_relay_read_timeout_drops_a_silent_upstream():
    clock, request = Clock(), ClientRequest()
    relay, transport = relay_with(request, clock, read_timeout=1.0)
    clock.advance(0.9)
    relay.dataReceived(b"alive")
    clock.advance(0.9)
    assert not transport.stopped
    clock.advance(0.2)
    assert transport.stopped
