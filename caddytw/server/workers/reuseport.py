"""Listening sockets shared by several processes through ``SO_REUSEPORT``.

Each worker process binds its own socket to the same address; the kernel spreads new
connections over them, and when one process dies only the connections queued on its
socket are lost. (A single accept socket inherited by every child balanced badly: one
child took nearly all connections.)

:class:`ReusePortReactor` wraps a reactor so that every ``listenTCP`` made through it
(by the server, TLS and admin code alike) opens such a socket; everything else goes to
the wrapped reactor unchanged.
"""

from __future__ import annotations

import socket
from typing import Any

from zope.interface import directlyProvides, providedBy


def bind_reuseport(port: int, interface: str = "", backlog: int = 511) -> socket.socket:
    """A non-blocking listening TCP socket with ``SO_REUSEADDR`` and ``SO_REUSEPORT``."""
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_reuseport(
    reactor: Any, port: int, factory: Any, interface: str = "", backlog: int = 511
) -> Any:
    """Like ``reactor.listenTCP`` but on a socket other processes may bind too."""
    sock = bind_reuseport(port, interface, backlog)
    try:
        return reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
    finally:
        sock.close()  # the reactor holds its own duplicate of the descriptor


class ReusePortReactor:
    """A reactor whose ``listenTCP`` binds with ``SO_REUSEPORT``; all else delegates."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        directlyProvides(self, *providedBy(reactor))

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return listen_reuseport(self._reactor, port, factory, interface, max(backlog, 511))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)
