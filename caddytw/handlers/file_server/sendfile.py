"""Response bodies straight from a file descriptor with ``os.sendfile``.

For a large file on a plain TCP connection, the kernel copying from the page cache
to the socket beats reading chunks into Python and writing them back. The lean channel
(:mod:`caddytw.wire.h1`) offers ``sendfile(fd, offset, count)``; a body
producer uses it like this::

    if sendfile_ready(request):          # the head is out; no encoder, no chunking
        d = send_span(request, fd, offset, count)
    else:
        ...write chunks as usual...

Anything else (TLS, HTTP/2 and 3, twisted's channel, an ``encode`` handler, HEAD)
keeps the ordinary path.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred


def sendfile_ready(request: Any) -> bool:
    """Send the response head now and say whether the body may go by ``os.sendfile``.

    The head goes first because writing it runs the header hooks, and one of them may
    install an encoder (``encode``), which rules sendfile out. The response must carry
    a Content-Length (set it before calling).
    """
    if request.method == b"HEAD" or request.client_gone:
        return False
    request.write(b"")
    channel = request.channel
    if channel is None or request._encoder is not None or request.chunked:
        return False
    can = getattr(channel, "can_sendfile", None)
    return bool(can is not None and can())


def send_span(request: Any, fd: int, offset: int, count: int) -> Deferred[int]:
    """``count`` bytes of ``fd`` from ``offset`` to the client (after
    :func:`sendfile_ready` said yes); counts them in the access log's ``size``."""

    def sent(length: int) -> int:
        request.sentLength += length
        return length

    deferred: Deferred[int] = request.channel.sendfile(fd, offset, count)
    return deferred.addCallback(sent)
