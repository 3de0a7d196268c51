"""HTTP/2 wire probes (issue 13) over real sockets, h2c and TLS, against caddytw and,
where Caddy's answer is the reference, Debian's Caddy on the same config.

Each probe sends raw frames (``tests/conformance/h2wire.py``) and asserts on the frames
that come back and on what a recording upstream behind ``reverse_proxy`` received.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hyperframe.frame import PingFrame, SettingsFrame, WindowUpdateFrame

from tests.conformance import h2wire
from tests.conformance.h2wire import H2Wire, Ports
from tests.conformance.probe_site import SMALL, RecordingUpstream, routes
from tests.tls.pki import TestCA


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream) -> dict:
    work = tmp_path_factory.mktemp("h2probes")
    root = work / "root"
    (root / "static").mkdir(parents=True)
    (root / "static" / "page.txt").write_bytes(SMALL)
    (root / "static" / "big.bin").write_bytes(b"b" * BIG)
    (root / "static" / "secret.txt").write_bytes(b"secret")
    ca = TestCA()
    cert, key, _ = ca.write_leaf(work, "site", ["localhost"])
    return {"work": work, "routes": routes(root, upstream.port), "cert": cert, "key": key}


@pytest.fixture(scope="module")
def ours(setup: dict) -> Iterator[Ports]:
    with h2wire.caddytw(setup["routes"], setup["work"] / "ours", setup["cert"], setup["key"]) as p:
        yield p


@pytest.fixture(scope="module")
def caddy(setup: dict) -> Iterator[Ports]:
    with h2wire.caddy(setup["routes"], setup["work"] / "caddy", setup["cert"], setup["key"]) as p:
        if p is None:
            pytest.skip("Debian's caddy is not installed")
        yield p


@pytest.fixture(params=["h2c", "tls"])
def wire(request: pytest.FixtureRequest, ours: Ports) -> Iterator[H2Wire]:
    tls = request.param == "tls"
    conn = H2Wire(ours.tls if tls else ours.plain, tls=tls)
    yield conn
    conn.close()


# -- finding 4: a cancelled stream must not wedge the connection ----------------------


@pytest.mark.parametrize("path", ["/", "/static/page.txt"])
def test_reset_stream_in_same_write_does_not_wedge_later_streams(wire: H2Wire, path: str) -> None:
    wire.send(wire.get(1, path) + wire.get(3, path) + wire.rst(1))
    assert wire.wait_streams(3), wire.streams
    assert wire.streams[3].status == 200 and wire.streams[3].body == SMALL
    # and the connection keeps serving
    wire.send(wire.get(5, path) + wire.get(7, path) + wire.rst(5) + wire.get(9, path))
    assert wire.wait_streams(7, 9), wire.streams
    assert wire.streams[7].body == SMALL and wire.streams[9].body == SMALL
    assert wire.goaway is None


def test_handler_dropping_a_reset_stream_does_not_end_the_connection(wire: H2Wire) -> None:
    """A stream reset while its handler runs: the handler's answer (or its "drop the
    connection") concerns that stream only (was: StreamIDTooLowError, then an
    AttributeError in ``request.fail`` that lost the rest of the read)."""
    batch = b"".join(wire.get(i, "/") for i in (1, 3, 5)) + wire.rst(1) + wire.rst(3)
    wire.send(batch + wire.get(7, "/static/page.txt"))
    assert wire.wait_streams(5, 7), wire.streams
    assert wire.streams[5].body == SMALL and wire.streams[7].body == SMALL


def request(wire: H2Wire, stream_id: int, fields: list[tuple[str, str]]) -> None:
    wire.send(wire.headers_frame(stream_id, fields))


def test_connect_without_path_is_answered_on_its_stream(wire: H2Wire) -> None:
    """RFC 9113 section 8.5: CONNECT carries only :method and :authority. Not tunnelled
    here, so that stream gets 405 and the connection goes on."""
    request(wire, 1, [(":method", "CONNECT"), (":authority", "example.com:443")])
    wire.send(wire.get(3, "/"))
    assert wire.wait_streams(1, 3), wire.streams
    assert wire.streams[1].status == 405
    assert wire.streams[3].body == SMALL and wire.goaway is None


@pytest.mark.parametrize(
    "fields",
    [
        [(":method", "GET"), (":path", "/"), (":authority", "localhost")],  # no :scheme
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("Upper", "x")],
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("connection", "close")],
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("te", "gzip")],
        [(":method", "GET"), ("x", "1"), (":scheme", "http"), (":path", "/")],
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":bogus", "1")],
    ],
    ids=["no-scheme", "uppercase", "connection", "te", "pseudo-after", "unknown-pseudo"],
)
def test_malformed_header_block_resets_only_its_stream(
    wire: H2Wire, fields: list[tuple[str, str]]
) -> None:
    request(wire, 1, fields)
    wire.send(wire.get(3, "/"))
    assert wire.wait_streams(1, 3), wire.streams
    assert wire.streams[1].reset == h2wire.PROTOCOL_ERROR or wire.streams[1].status == 400
    assert wire.streams[3].body == SMALL and wire.goaway is None


# -- findings 5 and 6: the request target and Host --------------------------------------


def proxied_target(wire: H2Wire, upstream: RecordingUpstream, path: str) -> tuple[int, bytes]:
    """Send GET ``path`` on stream 1; the status and the target the upstream received."""
    before = len(upstream.heads)
    wire.send(wire.get(1, path))
    assert wire.wait_streams(1), wire.streams
    targets = upstream.targets()[before:]
    return wire.streams[1].status, targets[0] if targets else b""


@pytest.mark.parametrize("server", ["ours", "caddy"])
def test_hash_in_path_is_forwarded_escaped(
    request: pytest.FixtureRequest, upstream: RecordingUpstream, server: str
) -> None:
    """``/proxy/secret#`` is not the denied ``/proxy/secret``; the upstream must get
    ``%23`` (as from Caddy), not a ``#`` it would drop with what follows."""
    ports: Ports = request.getfixturevalue(server)
    wire = H2Wire(ports.plain)
    try:
        status, target = proxied_target(wire, upstream, "/proxy/secret#")
    finally:
        wire.close()
    assert (status, target) == (200, b"/proxy/secret%23")


@pytest.mark.parametrize("path", ["/a b", "/a\tb", "/a\x7fb"])
def test_space_or_control_in_path_is_400_on_its_stream(wire: H2Wire, path: str) -> None:
    wire.send(wire.get(1, path) + wire.get(3, "/"))
    assert wire.wait_streams(1, 3), wire.streams
    assert wire.streams[1].status == 400 or wire.streams[1].reset == h2wire.PROTOCOL_ERROR
    assert wire.streams[3].body == SMALL and wire.goaway is None


@pytest.mark.parametrize("authority", ["a b", "evil.com/@good", "<b>x</b>"])
def test_malformed_authority_is_400(wire: H2Wire, authority: str) -> None:
    wire.send(wire.get(1, "/host", authority=authority) + wire.get(3, "/"))
    assert wire.wait_streams(1, 3), wire.streams
    assert wire.streams[1].status == 400 or wire.streams[1].reset == h2wire.PROTOCOL_ERROR
    assert wire.streams[3].body == SMALL


def test_absolute_path_does_not_override_authority(wire: H2Wire) -> None:
    """An absolute-form ``:path`` is malformed in HTTP/2 (RFC 9113 section 8.3.1); it
    must never become the Host."""
    wire.send(wire.get(1, "http://evil.example/host", authority="good.example"))
    assert wire.wait_streams(1), wire.streams
    assert b"evil" not in wire.streams[1].body
    assert wire.streams[1].status == 400 or wire.streams[1].reset == h2wire.PROTOCOL_ERROR


def test_authority_wins_and_must_match_host(wire: H2Wire) -> None:
    fields = [(":method", "GET"), (":scheme", "http"), (":path", "/host")]
    request(wire, 1, [*fields, (":authority", "good.example")])
    request(wire, 3, [*fields, (":authority", "good.example"), ("host", "evil.example")])
    assert wire.wait_streams(1, 3), wire.streams
    assert wire.streams[1].body == b"good.example"
    assert wire.streams[3].status == 400 or wire.streams[3].reset == h2wire.PROTOCOL_ERROR


# -- finding 7: control frame floods ------------------------------------------------------

BIG = 24 << 20


def test_window_updates_of_a_long_download_are_not_a_flood(ours: Ports) -> None:
    """The raw client acknowledges every DATA frame with two WINDOW_UPDATEs (thousands
    for this file): they answer our data, so they must not spend the flood budget."""
    wire = H2Wire(ours.plain)
    try:
        wire.send(wire.get(1, "/static/big.bin"))
        assert wire.wait_streams(1, timeout=60), wire.streams[1].status
        assert len(wire.streams[1].body) == BIG and wire.goaway is None
    finally:
        wire.close()


FLOODS = {
    "settings": lambda i: SettingsFrame(0).serialize(),
    "ping": lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize(),
    "window_update": lambda i: WindowUpdateFrame(0, window_increment=1).serialize(),
    "empty_data": lambda i: b"",  # replaced below: needs an open stream
}


@pytest.mark.parametrize(
    "kind", ["settings", "ping", "window_update", "empty_data", "closed_stream", "rapid_reset"]
)
def test_control_frame_flood_is_cut_and_others_are_served(ours: Ports, kind: str) -> None:
    """The flooder gets GOAWAY(ENHANCE_YOUR_CALM) within a bounded number of frames, and
    a second client on the same server is answered while it floods."""
    flooder = H2Wire(ours.plain)
    other = H2Wire(ours.tls, tls=True)
    try:
        if kind == "empty_data":
            flooder.send(flooder.get(1, "/", end_stream=False))
            frame = lambda i: H2Wire.data(1, b"", end_stream=False)  # noqa: E731
        elif kind == "closed_stream":  # h2 answers these itself, with no event
            flooder.send(flooder.get(1, "/a b", end_stream=False))
            frame = lambda i: H2Wire.data(1, b"", end_stream=False)  # noqa: E731
        elif kind == "rapid_reset":  # CVE-2023-44487
            frame = lambda i: flooder.get(2 * i + 1, "/") + H2Wire.rst(2 * i + 1)  # noqa: E731
        else:
            frame = FLOODS[kind]
        sent = 0
        stream = 1
        while sent < 50_000 and not flooder.closed:
            try:
                flooder.send(b"".join(frame(sent + i) for i in range(100)))
            except OSError:
                break
            sent += 100
            if sent % 1000 == 0:
                # the other client is served in the middle of the flood
                other.send(other.get(stream, "/"))
                assert other.wait_streams(stream), other.streams
                assert other.streams[stream].body == SMALL
                stream += 2
            flooder.read_until(lambda: False, timeout=0.001)
        flooder.read_until(lambda: flooder.closed, timeout=10)
        assert flooder.goaway == h2wire.ENHANCE_YOUR_CALM
        assert flooder.closed and sent <= 5_000, sent
    finally:
        flooder.close()
        other.close()


def test_handler_abort_resets_only_its_stream(wire: H2Wire) -> None:
    """``static_response`` ``abort`` drops "the connection" of its request: on HTTP/2 that
    is its stream (was an AttributeError on twisted's None stream transport)."""
    wire.send(wire.get(1, "/abort") + wire.get(3, "/"))
    assert wire.wait_streams(1, 3), wire.streams
    assert wire.streams[1].reset is not None and wire.streams[1].status == 0
    assert wire.streams[3].body == SMALL and wire.goaway is None


def test_refused_request_with_a_body_coming_is_reset_after_its_answer(wire: H2Wire) -> None:
    """A 400 before the body: RST_STREAM(NO_ERROR) tells the client to stop sending it."""
    wire.send(wire.get(1, "/a b", end_stream=False))
    assert wire.wait_streams(1), wire.streams
    wire.read_until(lambda: wire.streams[1].reset is not None, timeout=5)
    assert (wire.streams[1].status, wire.streams[1].reset) == (400, 0)
    wire.send(wire.data(1, b"late") + wire.get(3, "/"))
    assert wire.wait_streams(3) and wire.streams[3].body == SMALL


# -- finding 3: bodies stream to the handler, they are not spooled first ----------------


def post(wire: H2Wire, stream_id: int, path: str, length: int) -> None:
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path)]
    fields += [(":authority", "localhost"), ("content-length", str(length))]
    wire.send(wire.headers_frame(stream_id, fields, end_stream=False))


def test_handler_answers_before_the_body_is_sent(wire: H2Wire) -> None:
    """The request is dispatched at its headers: a handler that does not read the body
    answers at once, and the body still coming is refused with RST_STREAM(NO_ERROR)."""
    post(wire, 1, "/", 300 << 20)
    assert wire.wait_streams(1), wire.streams
    wire.read_until(lambda: wire.streams[1].reset is not None, timeout=5)
    assert (wire.streams[1].status, wire.streams[1].body) == (200, SMALL)
    assert wire.streams[1].reset == 0 and wire.goaway is None


def test_declared_body_over_max_size_is_413_before_any_byte(wire: H2Wire) -> None:
    post(wire, 1, "/limited/x", 200 << 20)
    assert wire.wait_streams(1), wire.streams
    assert wire.streams[1].status == 413


def test_body_over_max_size_without_length_stops_at_the_limit(wire: H2Wire) -> None:
    fields = [(":method", "POST"), (":scheme", "http"), (":path", "/limited/y")]
    wire.send(wire.headers_frame(1, [*fields, (":authority", "localhost")], end_stream=False))
    wire.send(wire.data(1, b"x" * 4000, end_stream=False))
    assert wire.wait_streams(1), wire.streams
    assert wire.streams[1].status == 413


def test_body_streams_to_the_upstream(wire: H2Wire, upstream: RecordingUpstream) -> None:
    post(wire, 1, "/proxy/upload", 10)
    wire.send(wire.data(1, b"0123456789"))
    assert wire.wait_streams(1), wire.streams
    assert wire.streams[1].body == b"upstream"
