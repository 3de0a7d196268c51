"""The three channels a request can have (HTTP/1.1, HTTP/2, HTTP/3) all provide
:class:`caddytw.wire.channel.Channel`: real connections in memory, real requests."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
from h2.events import DataReceived
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from caddytw.server.build import build_app
from caddytw.wire.channel import Channel
from caddytw.wire.h1 import FastHTTPChannel
from caddytw.wire.h2 import CaddyH2Stream
from caddytw.wire.h3.certs import static_provider
from caddytw.wire.h3.stream import H3Stream
from tests.h3.memory_quic import MemoryH3
from tests.h3.test_h3_memory import self_signed

# Checked by mypy when the tests are type-checked: each class has every member.
CHANNELS: tuple[type[Channel], ...] = (FastHTTPChannel, CaddyH2Stream, H3Stream)

ROUTES = [{"handle": [{"handler": "static_response", "body": "{http.request.proto}"}]}]


def recording(site: Any) -> list[Any]:
    """Keep the channel of every request the site builds (the real factory builds it;
    a finished request lets go of its channel)."""
    made: list[Any] = []
    factory = site.requestFactory

    def record(channel: Any, queued: bool = False) -> Any:
        request = factory(channel, queued=queued)
        made.append(request.channel)
        return request

    site.requestFactory = record
    return made


def plain_site() -> Any:
    server = {"listen": [":0"], "routes": ROUTES, "protocols": ["h1", "h2", "h2c"]}
    return build_app({"apps": {"http": {"servers": {"s": server}}}}, Clock()).servers[0].site


def connect(site: Any) -> tuple[Any, StringTransport]:
    address = IPv4Address("TCP", "127.0.0.1", 50000)
    protocol = site.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def test_http1_connection_is_the_channel() -> None:
    site = plain_site()
    made = recording(site)
    protocol, transport = connect(site)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().endswith(b"HTTP/1.1")
    assert isinstance(made[0], Channel)
    assert made[0] is protocol
    assert made[0].protocol_name == "h1"


def test_http2_stream_is_the_channel() -> None:
    site = plain_site()
    made = recording(site)
    protocol, transport = connect(site)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1, [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")], True
    )
    protocol.dataReceived(client.data_to_send())  # h2c with prior knowledge
    site.reactor.advance(0)
    events = client.receive_data(transport.value())
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"HTTP/2.0"
    assert isinstance(made[0], Channel)
    assert made[0].protocol_name == "h2"


def test_http3_stream_is_the_channel() -> None:
    cert, key = self_signed("localhost")
    pair = MemoryH3(ROUTES, static_provider([cert], key))
    made = recording(pair.site)
    pair.pump()
    stream_id = pair.request("/")
    pair.pump()
    assert bytes(pair.answers[stream_id].body) == b"HTTP/3.0"
    assert isinstance(made[0], Channel)
    assert made[0].protocol_name == "h3"


def test_a_closed_connection_is_forgotten_by_the_site_that_holds_it() -> None:
    """The channel tells its site it closed (``on_close``), nothing patched onto it; after
    a reload's ``adopt`` it is the new site that forgets it."""
    from tests.support.memory import memory_server

    old = memory_server(ROUTES).site
    new = memory_server(ROUTES).site
    closed = old.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    adopted = old.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
    assert "connectionLost" not in vars(closed)  # the class's own method runs
    for protocol in (closed, adopted):
        protocol.makeConnection(StringTransport())
    closed.connectionLost()
    assert closed not in old.connections and adopted in old.connections
    old.connections.discard(adopted)
    new.adopt(adopted)
    adopted.connectionLost()
    assert adopted not in new.connections
