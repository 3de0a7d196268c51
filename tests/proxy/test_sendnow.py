"""``send_now`` on a real socket pair: sent before any reactor turn when nothing is
queued, through the transport otherwise (and for what the kernel did not take)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from caddytw.wire.sendnow import plain_socket, send_now


class Transport:
    """The attributes of twisted's socket transports that ``send_now`` reads."""

    def __init__(self) -> None:
        self._tempDataLen = 0
        self.offset = 0
        self.dataBuffer = b""
        self.producer: object = None
        self.disconnecting = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_nothing_queued_goes_straight_to_the_socket(pair):
    ours, theirs = pair
    transport = Transport()
    send_now(transport, ours, b"GET / HTTP/1.1\r\n\r\n")
    assert theirs.recv(100) == b"GET / HTTP/1.1\r\n\r\n" and transport.written == []


@pytest.mark.parametrize("state", ["queued", "producer", "disconnecting"])
def test_otherwise_the_transport_keeps_the_order(pair, state):
    ours, theirs = pair
    transport = Transport()
    if state == "queued":
        transport._tempDataLen = 3
    elif state == "producer":
        transport.producer = object()
    else:
        transport.disconnecting = True
    send_now(transport, ours, b"late")
    assert transport.written == [b"late"]
    with pytest.raises(BlockingIOError):
        theirs.recv(100)


def test_what_the_kernel_does_not_take_goes_through_the_transport(pair):
    ours, _ = pair
    transport = Transport()
    data = b"x" * (16 << 20)
    send_now(transport, ours, data)
    assert transport.written and 0 < len(transport.written[0]) < len(data)
    assert data.endswith(transport.written[0])


def test_only_plain_transports_have_a_socket():
    assert plain_socket(Transport()) is None
