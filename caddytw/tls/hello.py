"""Holding a TLS handshake until its certificate exists (on-demand TLS, get_certificate).

OpenSSL's SNI callback must answer at once, but an on-demand certificate takes an ACME
order and a ``get_certificate`` one an HTTP request, and the reactor never blocks. So
the TLS listener reads the ClientHello itself first: :func:`client_hello_server_name`
parses the records that have arrived, and :class:`WaitingTLSFactory` hands them to
OpenSSL only after its ``prepare(name)`` Deferred has fired (the transport is paused
meanwhile, so a client cannot make us buffer more than one ClientHello). The SNI
callback then finds the certificate in the selector as for any other name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

log = Logger()

HANDSHAKE = 22
CLIENT_HELLO = 1
SERVER_NAME_EXTENSION = 0
SIGNATURE_ALGORITHMS_EXTENSION = 13
MAX_HELLO = 64 * 1024  # far above any real ClientHello; past it, stop looking


class _Incomplete(Exception):
    pass


@dataclass(frozen=True)
class ClientHello:
    """What a certificate manager is told about a handshake (Go's ClientHelloInfo)."""

    server_name: str | None = None
    cipher_suites: tuple[int, ...] = ()
    signature_schemes: tuple[int, ...] = ()
    local_ip: str = ""


def parse_client_hello(data: bytes) -> tuple[bool, ClientHello | None]:
    """(complete, hello) from the first bytes of a TLS connection.

    ``complete`` is False while more bytes are needed; bytes that are not a ClientHello
    give ``(True, None)`` (OpenSSL will judge them).
    """
    try:
        body = _handshake_message(data)
    except _Incomplete:
        return len(data) >= MAX_HELLO, None
    except (ValueError, IndexError):
        return True, None
    try:
        return True, _parse_body(body)
    except (ValueError, IndexError):
        return True, None


def client_hello_server_name(data: bytes) -> tuple[bool, str | None]:
    """(complete, SNI) from the first bytes of a TLS connection."""
    complete, hello = parse_client_hello(data)
    return complete, hello.server_name if hello else None


def _handshake_message(data: bytes) -> bytes:
    """The ClientHello body, joined from as many handshake records as it spans."""
    fragments = b""
    offset = 0
    while True:
        if len(data) < offset + 5:
            raise _Incomplete
        if data[offset] != HANDSHAKE:
            raise ValueError("not a handshake record")
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if len(data) < offset + 5 + length:
            raise _Incomplete
        fragments += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(fragments) >= 4:
            if fragments[0] != CLIENT_HELLO:
                raise ValueError("not a ClientHello")
            size = int.from_bytes(fragments[1:4], "big")
            if len(fragments) >= 4 + size:
                return fragments[4 : 4 + size]


def _parse_body(hello: bytes) -> ClientHello:
    position = 2 + 32  # client_version, random
    position += 1 + hello[position]  # session_id
    suites_length = int.from_bytes(hello[position : position + 2], "big")
    suites = _uint16s(hello[position + 2 : position + 2 + suites_length])
    position += 2 + suites_length
    position += 1 + hello[position]  # compression methods
    if position >= len(hello):
        return ClientHello(None, suites)
    end = position + 2 + int.from_bytes(hello[position : position + 2], "big")
    position += 2
    name: str | None = None
    schemes: tuple[int, ...] = ()
    while position + 4 <= end:
        kind = int.from_bytes(hello[position : position + 2], "big")
        size = int.from_bytes(hello[position + 2 : position + 4], "big")
        extension = hello[position + 4 : position + 4 + size]
        position += 4 + size
        if kind == SERVER_NAME_EXTENSION:
            name = _host_name(extension[2:])
        elif kind == SIGNATURE_ALGORITHMS_EXTENSION:
            schemes = _uint16s(extension[2:])
    return ClientHello(name, suites, schemes)


def _uint16s(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2))


def _host_name(names: bytes) -> str | None:
    while len(names) >= 3:
        name_type = names[0]
        length = int.from_bytes(names[1:3], "big")
        if name_type == 0:
            return names[3 : 3 + length].decode("ascii", "replace")
        names = names[3 + length :]
    return None


Prepare = Callable[[ClientHello], "Deferred[Any] | None"]


class _WaitingTLSProtocol(TLSMemoryBIOProtocol):
    """Buffers the ClientHello, waits for ``factory.prepare(hello)``, then goes on."""

    factory: WaitingTLSFactory

    def makeConnection(self, transport: Any) -> None:
        self._hello: bytes | None = b""
        self._gone = False
        super().makeConnection(transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gone = True
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self._hello is None:
            super().dataReceived(data)
            return
        self._hello += data
        complete, hello = parse_client_hello(self._hello)
        if not complete:
            return
        waiting = None
        name = hello.server_name if hello else None
        if hello is not None and name:
            local = getattr(self.transport.getHost(), "host", "")  # type: ignore[union-attr]
            try:
                waiting = self.factory.prepare(replace(hello, local_ip=local))
            except Exception:
                log.failure("preparing a certificate for {name} failed", name=name)
        if waiting is None:
            self._release()
            return
        self.transport.pauseProducing()  # type: ignore[union-attr]
        waiting.addErrback(
            lambda failure: log.failure(
                "no certificate for {name} at handshake", failure, name=name
            )
        )
        waiting.addBoth(lambda _: self._resume())

    def _resume(self) -> None:
        if self._hello is None or self._gone:
            return
        self.transport.resumeProducing()  # type: ignore[union-attr]
        self._release()

    def _release(self) -> None:
        buffered, self._hello = self._hello or b"", None
        super().dataReceived(buffered)


class WaitingTLSFactory(TLSMemoryBIOFactory):
    """``TLSMemoryBIOFactory`` whose connections wait for ``prepare(hello)``.

    ``prepare`` returns None when the certificate (if any) is already there, else a
    Deferred that fires when the handshake may go on (with or without one).
    """

    protocol = _WaitingTLSProtocol

    def __init__(self, creator: Any, wrapped: Any, prepare: Prepare) -> None:
        super().__init__(creator, False, wrapped)
        self.prepare = prepare
