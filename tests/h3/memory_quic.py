"""An aioquic client and the HTTP/3 listener joined in memory, time passed explicitly.

The server side is the real :class:`H3ServerProtocol` over a fake UDP transport and a
``MemoryReactorClock``; the client is aioquic's sans-IO ``QuicConnection`` plus
``H3Connection``. ``pump()`` moves datagrams both ways and runs due reactor calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock

from caddytw.handlers.registry import LazyHandlerFactory, handler_factories
from caddytw.server.build import build_app
from caddytw.wire.h3.certs import CertificateProvider, QuicConfigurations
from caddytw.wire.h3.protocol import H3ServerProtocol

SERVER = ("127.0.0.1", 4433)
CLIENT = ("127.0.0.1", 50000)
SETTLE = 0.05  # client timers due within this are run by pump() (pacing, ack delay)


def register_test_handlers() -> None:
    """Make the test-only handlers known in this process (the registry caches a dict)."""
    factories = handler_factories()
    factories.setdefault(
        "h3test_blob", LazyHandlerFactory("h3test_blob", "tests.h3.h3test_handlers")
    )
    factories.setdefault("h3test_echo", LazyHandlerFactory("h3test_echo", "tests.h3.h3test_echo"))


class FakeUDP:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", *SERVER)


@dataclass
class Answer:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False


class MemoryH3:
    def __init__(
        self,
        routes: list[Any],
        provider: CertificateProvider,
        *,
        idle_timeout: float = 5.0,
        server_name: str = "localhost",
        client_alpn: list[str] | None = None,
    ) -> None:
        register_test_handlers()
        self.reactor = MemoryReactorClock()
        config = {"apps": {"http": {"servers": {"s": {"listen": [":4433"], "routes": routes}}}}}
        self.site = build_app(config, self.reactor).servers[0].site
        configurations = QuicConfigurations(provider, idle_timeout=idle_timeout)
        self.server = H3ServerProtocol(self.site, configurations, reactor=self.reactor)
        self.udp = FakeUDP()
        self.server.transport = self.udp  # type: ignore[assignment]
        self.server.startProtocol()
        client_config = QuicConfiguration(
            is_client=True, alpn_protocols=client_alpn or list(H3_ALPN), idle_timeout=60.0
        )
        client_config.verify_mode = 0  # ssl.CERT_NONE
        client_config.server_name = server_name
        self.client = QuicConnection(configuration=client_config)
        self.client.connect(SERVER, now=self.reactor.seconds())
        self.h3 = H3Connection(self.client)
        self.answers: dict[int, Answer] = {}
        self.deliver_to_client = True
        self.client_events: list[Any] = []

    def pump(self, rounds: int = 10000, step: float = 0.0) -> None:
        """Exchange datagrams until both sides are quiet (or ``rounds`` is reached)."""
        for _ in range(rounds):
            moved = False
            for data, _ in self.client.datagrams_to_send(now=self.reactor.seconds()):
                self.server.datagramReceived(data, CLIENT)
                moved = True
            sent, self.udp.sent = self.udp.sent, []
            if self.deliver_to_client:
                for data, _ in sent:
                    self.client.receive_datagram(data, SERVER, now=self.reactor.seconds())
                    moved = True
                self._client_events()
            self.reactor.advance(step)
            if moved or self.udp.sent:
                continue
            # Quiet: let the client's pacing/ack timers run if they are due very soon.
            timer = self.client.get_timer()
            now = self.reactor.seconds()
            if timer is None or timer - now > SETTLE:
                return
            self.reactor.advance(max(0.0, timer - now))
            self.client.handle_timer(now=self.reactor.seconds())
            self._client_events()

    def _client_events(self) -> None:
        event = self.client.next_event()
        while event is not None:
            self.client_events.append(event)
            for h3_event in self.h3.handle_event(event):
                answer = self.answers.setdefault(h3_event.stream_id, Answer())  # type: ignore[attr-defined]
                if isinstance(h3_event, HeadersReceived):
                    headers = dict(h3_event.headers)
                    answer.status = int(headers.pop(b":status"))
                    answer.headers = headers
                elif isinstance(h3_event, DataReceived):
                    answer.body += h3_event.data
                if getattr(h3_event, "stream_ended", False):
                    answer.ended = True
            event = self.client.next_event()

    def request(self, path: str, method: str = "GET", body: bytes = b"") -> int:
        stream_id = self.client.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        if body:
            headers.append((b"content-length", b"%d" % len(body)))
        self.h3.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.h3.send_data(stream_id, body, end_stream=True)
        return stream_id

    def h3_delayed_calls(self) -> list[Any]:
        calls: list[Any] = list(self.reactor.getDelayedCalls())
        return [
            call
            for call in calls
            if getattr(call.func, "__module__", "").startswith(("caddytw.wire.h3", "tests.h3"))
        ]
