"""The HTTP/3 listener in memory: real aioquic on both sides, time passed explicitly."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from caddytw.wire.h3.certs import static_provider
from caddytw.wire.h3.stream import HIGH_WATER, stream_backlog
from tests.h3.h3client import pattern
from tests.h3.memory_quic import MemoryH3


def self_signed(name: str) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def localhost_cert() -> tuple[x509.Certificate, Any]:
    return self_signed("localhost")


ROUTES: list[Any] = [
    {"match": [{"path": ["/blob"]}], "handle": [{"handler": "h3test_blob", "size": 4 << 20}]},
    {
        "match": [{"path": ["/blob-pull"]}],
        "handle": [{"handler": "h3test_blob", "size": 4 << 20, "mode": "pull"}],
    },
    {"match": [{"path": ["/echo"]}], "handle": [{"handler": "h3test_echo"}]},
    {"handle": [{"handler": "static_response", "body": "{http.request.proto} {http.request.uri}"}]},
]


def test_get_and_post(localhost_cert: Any) -> None:
    pair = MemoryH3(ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]))
    pair.pump()
    get = pair.request("/hello?x=1")
    post = pair.request("/echo", "POST", b"abc" * 1000)
    pair.pump()
    assert pair.answers[get].status == 200
    assert bytes(pair.answers[get].body) == b"HTTP/3.0 /hello?x=1"
    assert b'"length": 3000' in pair.answers[post].body
    assert pair.answers[post].ended


@pytest.mark.parametrize("path", ["/blob", "/blob-pull"])
def test_producer_is_paused_while_the_client_does_not_acknowledge(
    localhost_cert: Any, path: str
) -> None:
    pair = MemoryH3(ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]))
    pair.pump()
    stream_id = pair.request(path)
    pair.deliver_to_client = False  # the client stops acknowledging anything
    connection = next(iter(pair.server.connections))
    peak = 0
    for _ in range(200):
        pair.pump(rounds=5, step=0.002)  # 2 s in all, under the idle timeout
        peak = max(peak, stream_backlog(connection.quic, stream_id))
    stream = connection.streams[stream_id]
    assert stream._paused or not stream.streaming
    assert peak <= HIGH_WATER + 64 * 1024  # one chunk past the mark, never more
    pair.deliver_to_client = True
    for _ in range(500):
        pair.pump(step=0.001)
        if pair.answers.get(stream_id) and pair.answers[stream_id].ended:
            break
    assert bytes(pair.answers[stream_id].body) == pattern(4 << 20)
    assert connection.streams == {}


def test_idle_connection_leaves_no_state(localhost_cert: Any) -> None:
    pair = MemoryH3(ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]), idle_timeout=3)
    pair.pump()
    first = pair.request("/a")
    pair.pump()
    assert pair.answers[first].status == 200
    assert pair.server.stats()["connections"] == 1
    assert pair.h3_delayed_calls()  # the connection's timer is armed
    pair.deliver_to_client = False
    pair.reactor.advance(10)  # the client vanished: the idle timeout passes
    pair.reactor.advance(10)
    stats = pair.server.stats()
    assert stats["connections"] == stats["routes"] == stats["timers"] == 0
    assert pair.h3_delayed_calls() == []


def test_timer_follows_get_timer(localhost_cert: Any) -> None:
    pair = MemoryH3(ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]))
    pair.pump()
    connection = next(iter(pair.server.connections))
    [call] = pair.h3_delayed_calls()
    assert call.getTime() == pytest.approx(connection.quic.get_timer())


def test_certificate_chosen_by_server_name() -> None:
    certs = {name: self_signed(name) for name in ("a.test", "b.test")}

    def provider(name: str | None) -> Any:
        found = certs.get(name or "")
        return ([found[0]], found[1]) if found else None

    for name in ("a.test", "b.test"):
        pair = MemoryH3(ROUTES, provider, server_name=name)
        pair.pump()
        assert pair.client.tls._peer_certificate == certs[name][0]
        assert pair.server.stats()["connections"] == 1
    stranger = MemoryH3(ROUTES, provider, server_name="c.test")
    stranger.pump()
    assert stranger.server.stats()["connections"] == 0


def test_client_hello_spread_over_two_datagrams(localhost_cert: Any) -> None:
    alpns = ["h3", *(f"padding-protocol-{i:03d}-" + "x" * 200 for i in range(8))]
    pair = MemoryH3(
        ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]), client_alpn=alpns
    )
    first = pair.client.datagrams_to_send(now=0.0)
    assert len(first) >= 2  # the hello really is split
    for data, _ in first[:-1]:
        pair.server.datagramReceived(data, ("127.0.0.1", 50000))
    assert pair.server.stats()["pending_hellos"] == 1
    assert pair.server.stats()["connections"] == 0
    pair.server.datagramReceived(first[-1][0], ("127.0.0.1", 50000))
    assert pair.server.stats()["pending_hellos"] == 0
    pair.pump()
    stream_id = pair.request("/x")
    pair.pump()
    assert bytes(pair.answers[stream_id].body) == b"HTTP/3.0 /x"


def test_client_reset_stops_the_producer_and_keeps_the_connection(localhost_cert: Any) -> None:
    pair = MemoryH3(ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]))
    pair.pump()
    stream_id = pair.request("/blob")
    pair.pump(rounds=3)
    connection = next(iter(pair.server.connections))
    stream = connection.streams[stream_id]
    producer = stream.producer
    assert producer is not None
    pair.client.reset_stream(stream_id, 0x10C)  # H3_REQUEST_CANCELLED
    pair.client.stop_stream(stream_id, 0x10C)
    pair.pump()
    assert stream_id not in connection.streams
    assert producer.stopped
    assert stream.request._disconnected
    again = pair.request("/again")
    pair.pump()
    assert bytes(pair.answers[again].body) == b"HTTP/3.0 /again"


def test_private_aioquic_name_the_stream_errors_rely_on() -> None:
    """``caddytw.wire.h3.connection.StreamErrorH3Connection`` wraps this aioquic method."""
    import inspect

    from aioquic.h3.connection import H3Connection

    method = H3Connection._receive_request_or_push_data
    assert list(inspect.signature(method).parameters) == ["self", "stream", "data", "stream_ended"]


def test_refused_request_with_a_body_coming_stops_the_sender(localhost_cert: Any) -> None:
    """A 400 at the headers (space in :path) while the body is still coming: the stream
    answers and sends STOP_SENDING(H3_NO_ERROR); other streams go on."""
    from aioquic.h3.connection import ErrorCode
    from aioquic.quic.events import StopSendingReceived

    pair = MemoryH3(ROUTES, static_provider([localhost_cert[0]], localhost_cert[1]))
    pair.pump()
    stream_id = pair.client.get_next_available_stream_id()
    headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost")]
    pair.h3.send_headers(stream_id, [*headers, (b":path", b"/a b")], end_stream=False)
    pair.pump()
    assert pair.answers[stream_id].status == 400
    stops = [e for e in pair.client_events if isinstance(e, StopSendingReceived)]
    assert [(e.stream_id, e.error_code) for e in stops] == [(stream_id, ErrorCode.H3_NO_ERROR)]
    later = pair.request("/after")
    pair.pump()
    assert bytes(pair.answers[later].body) == b"HTTP/3.0 /after"
