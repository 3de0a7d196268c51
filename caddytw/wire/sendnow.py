"""Writing to a connection at once instead of on the next reactor turn.

Twisted's TCP and Unix transports buffer every ``write`` until the reactor's next turn:
two epoll updates (start and stop watching for writability) and one write event per
write. On the hot paths a write usually finds the transport's buffers empty, so sending
on the socket now keeps the byte order and skips all of that; whatever the kernel does
not take goes through the transport as usual. The HTTP/1.1 server channel does this for
answers (``caddytw.wire.h1``), the proxy's upstream client for request heads.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp, unix

#: Transports that own a plain socket (no TLS or other layer in between).
_PLAIN = (tcp.Server, tcp.Client, unix.Server, unix.Client)


def plain_socket(transport: Any) -> socket.socket | None:
    """The socket under ``transport`` when :func:`send_now` may use it, else None."""
    if type(transport) in _PLAIN:
        return transport.socket  # type: ignore[no-any-return]
    return None


def send_now(transport: Any, sock: socket.socket | None, data: bytes) -> None:
    """``transport.write(data)``, sent on ``sock`` (from :func:`plain_socket`) right
    away when nothing is queued before it and no producer is attached."""
    if (
        sock is not None
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
        and transport.producer is None
        and not transport.disconnecting
    ):
        try:
            sent = sock.send(data)
        except OSError:
            sent = 0  # EAGAIN or a broken connection: the transport finds out
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
