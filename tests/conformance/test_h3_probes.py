"""HTTP/3 wire probes (issue 13) against a real ``twistd -n caddy``: the request line and
Host checks shared with HTTP/2, a malformed header block resetting one stream, and
version negotiation only for full-size datagrams (compared with Caddy)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import h2wire
from tests.conformance.probe_site import SMALL, RecordingUpstream, routes
from tests.h3.h3client import run
from tests.tls.pki import TestCA

CLIENT = Path(__file__).resolve().parents[1] / "h3" / "h3client.py"
H3_MESSAGE_ERROR = 0x10E


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("h3probes")
    root = work / "root"
    (root / "static").mkdir(parents=True)
    (root / "static" / "secret.txt").write_bytes(b"secret")
    upstream = RecordingUpstream()
    cert, key, _ = TestCA().write_leaf(work, "site", ["localhost"])
    site_routes = routes(root, upstream.port)
    with h2wire.caddytw(site_routes, work / "ours", cert, key) as ours:
        yield {"ours": ours, "upstream": upstream, "routes": site_routes, "work": work}
    upstream.close()


def h3(port: int, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the requests concurrently on one HTTP/3 connection (aioquic, own process)."""
    answer = run({"port": port, "connections": [requests], "timeout": 20})["connections"][0]
    assert isinstance(answer, list), answer
    return answer


def raw(path: str, *extra: tuple[str, str], authority: str = "localhost") -> dict[str, Any]:
    fields = [(":method", "GET"), (":scheme", "https"), (":authority", authority)]
    return {"raw_headers": [*fields, (":path", path), *extra]}


def test_request_line_checks_answer_one_stream(site: dict[str, Any]) -> None:
    upstream: RecordingUpstream = site["upstream"]
    before = len(upstream.heads)
    answers = h3(
        site["ours"].tls,
        [
            raw("/proxy/secret#"),
            raw("/a b"),
            raw("/host", authority="evil.com/@good"),
            raw("/host", ("host", "evil.example"), authority="good.example"),
            raw("/host", authority="good.example"),
            raw("http://evil.example/host", authority="good.example"),
            {"path": "/"},
        ],
    )
    hashed, space, bad_authority, conflict, good, absolute, plain = answers
    assert hashed["status"] == 200
    assert upstream.targets()[before:] == [b"/proxy/secret%23"]
    assert space["status"] == 400
    assert bad_authority["status"] == 400
    assert conflict["status"] == 400  # RFC 9114 section 4.3.1: they must match
    assert (good["status"], good["body"]) == (200, "good.example")
    assert absolute["status"] == 400
    assert plain["body"] == SMALL.decode()


def test_malformed_header_block_resets_only_its_stream(site: dict[str, Any]) -> None:
    answers = h3(
        site["ours"].tls,
        [
            raw("/", ("Upper", "x")),
            raw("/", ("connection", "close")),
            raw("/", ("content-length", "-1")),
            {"path": "/"},
        ],
    )
    *malformed, plain = answers
    for answer in malformed:
        assert answer.get("error") == f"reset {H3_MESSAGE_ERROR}", answer
    assert plain["status"] == 200 and plain["body"] == SMALL.decode()


def negotiation_probe(scid: bytes, size: int) -> bytes:
    """A long-header packet of an unknown version padded to ``size`` bytes."""
    head = bytes([0xC0]) + bytes.fromhex("0a0a0a0a") + b"\x08" + b"D" * 8 + bytes([len(scid)])
    return head + scid + bytes(size - len(head) - len(scid))


@pytest.mark.parametrize("server", ["ours", "caddy"])
def test_version_negotiation_only_for_full_size_datagrams(
    site: dict[str, Any], server: str
) -> None:
    """RFC 9000 section 5.2.2: a server MUST drop smaller packets of an unsupported
    version (else it amplifies spoofed traffic). The short probe goes first; the only
    answer must be to the full-size one."""
    if server == "caddy":
        if h2wire.CADDY is None:
            pytest.skip("Debian's caddy is not installed")
        context: AbstractContextManager[h2wire.Ports | None] = h2wire.caddy(
            site["routes"], site["work"] / "caddy", *_cert(site["work"])
        )
    else:
        context = nullcontext(site["ours"])
    with context as ports, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert ports is not None
        sock.settimeout(10)
        target = ("127.0.0.1", ports.tls)
        sock.sendto(negotiation_probe(b"SHORT", 200), target)
        sock.sendto(negotiation_probe(b"LARGE", 1200), target)
        reply, _ = sock.recvfrom(2048)
        assert reply[6:11] == b"LARGE"  # the answer's destination CID is our SCID


def _cert(work: Path) -> tuple[Path, Path]:
    cert, key, _ = TestCA().write_leaf(work, "caddy-site", ["localhost"])
    return cert, key


def test_body_is_not_awaited_before_the_handler(site: dict[str, Any]) -> None:
    """Dispatched at the headers: a declared body over ``request_body`` ``max_size`` gets
    413 and a handler that does not read gets its answer, before any body byte is sent."""
    length = ("content-length", str(200 << 20))
    post = [(":method", "POST"), (":scheme", "https"), (":authority", "localhost")]
    answers = h3(
        site["ours"].tls,
        [
            {"raw_headers": [*post, (":path", "/limited/x"), length], "open": True},
            {"raw_headers": [*post, (":path", "/"), length], "open": True},
        ],
    )
    assert [a["status"] for a in answers] == [413, 200]
