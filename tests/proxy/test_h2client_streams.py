"""The upstream HTTP/2 client against a real ``h2`` server state machine, in memory
(twisted's iosim pumps the bytes both ways): the peer's MAX_CONCURRENT_STREAMS makes
requests wait rather than fail, and a GOAWAY lets accepted streams finish while the
rest fail and new or waiting requests go to a new connection."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.test.iosim import connectedServerAndClient
from twisted.web.http_headers import Headers

from caddytw.handlers.reverse_proxy.h2client import H2Client
from caddytw.handlers.reverse_proxy.lean import UpstreamResponseError

KEY = ("upstream.test", 8080)


class Peer(Protocol):
    """An HTTP/2 server allowing two concurrent streams; answers when told to."""

    def __init__(self) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=False))
        self.requests: list[int] = []

    def connectionMade(self) -> None:
        self.h2.initiate_connection()
        self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 2})
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                self.requests.append(event.stream_id)
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def answer(self, stream_id: int) -> None:
        self.h2.send_headers(stream_id, [(":status", "200"), ("content-length", "2")])
        self.h2.send_data(stream_id, b"ok", end_stream=True)
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def goaway(self, last_stream_id: int) -> None:
        """A graceful GOAWAY, as Go's server sends when it shuts down: written as a raw
        frame because h2's state machine closes at once on its own GOAWAY, while a
        real server still finishes the streams it accepted."""
        frame = GoAwayFrame(0, last_stream_id=last_stream_id)
        self.transport.write(frame.serialize())  # type: ignore[union-attr]


def setup() -> tuple[H2Client, Peer, Any, list[Peer]]:
    """A client whose connection to KEY is pumped to a Peer; later dials get new peers."""
    peers: list[Peer] = []
    pumps: list[Any] = []

    class Endpoint:
        def connect(self, factory: Any) -> Any:
            from twisted.internet.defer import succeed

            client_side, server, pump = connectedServerAndClient(
                Peer, lambda: factory.buildProtocol(None)
            )
            peers.append(server)
            pumps.append(pump)
            return succeed(client_side)

    connector = SimpleNamespace(
        config=SimpleNamespace(keepalive=SimpleNamespace(idle_timeout=120.0)),
        endpoint=lambda host, port, alpn=(): Endpoint(),
    )
    client = H2Client(connector, Clock())
    client.request(*KEY, b"GET", b"/warm", Headers())  # dial the first connection
    pumps[0].flush()
    peers[0].answer(peers[0].requests[0])
    pumps[0].flush()

    def flush() -> None:
        for pump in pumps:
            pump.flush()

    return client, peers[0], flush, peers


def outcomes(deferreds: list[Any]) -> list[Any]:
    results: list[Any] = []
    for d in deferreds:
        d.addBoth(results.append)
    return results


def test_requests_wait_for_a_free_stream() -> None:
    client, peer, flush, _ = setup()
    answers = outcomes([client.request(*KEY, b"GET", b"/%d" % i, Headers()) for i in range(3)])
    flush()
    assert len(peer.requests) == 3  # the warm-up and two of the three: the limit is 2
    assert answers == []
    peer.answer(peer.requests[1])
    flush()
    assert len(peer.requests) == 4  # the third went out once a stream was free
    for stream_id in peer.requests[2:]:
        peer.answer(stream_id)
    flush()
    assert [a.code for a in answers] == [200, 200, 200]


def test_goaway_moves_waiting_and_new_requests_to_a_new_connection() -> None:
    client, peer, flush, peers = setup()
    in_flight = outcomes([client.request(*KEY, b"GET", b"/%d" % i, Headers()) for i in (1, 2)])
    waiting = outcomes([client.request(*KEY, b"GET", b"/c", Headers())])
    flush()
    accepted, unprocessed = peer.requests[1:3]
    peer.goaway(last_stream_id=accepted)
    flush()
    # h2's state machine takes no frame after GOAWAY: both in-flight streams fail
    # (the proxy's retry rules apply), saying which one the upstream never processed.
    assert [f.check(UpstreamResponseError) for f in in_flight] == [UpstreamResponseError] * 2
    assert "never processed" in in_flight[1].getErrorMessage()
    assert len(peers) == 2 and len(peers[1].requests) == 1  # the waiting one moved
    later = outcomes([client.request(*KEY, b"GET", b"/d", Headers())])
    flush()
    for stream_id in peers[1].requests:
        peers[1].answer(stream_id)
    flush()
    assert waiting[0].code == 200 and later[0].code == 200
    assert unprocessed > accepted
