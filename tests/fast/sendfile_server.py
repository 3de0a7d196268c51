"""A tiny server for the sendfile test: serves the file named on the command line at
every path, with ``os.sendfile`` when the connection allows it. Prints its port."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.internet import reactor
from twisted.web import server

from caddytw.handlers.file_server.sendfile import send_span, sendfile_ready
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource
from caddytw.wire.h1 import fast_channel_protocol


class FileResource(LeafResource):
    def __init__(self, path: str) -> None:
        self.path = path

    def render(self, request: CaddyRequest) -> Any:
        if request.path == b"/cork":
            # Whether this connection's socket still holds back partial segments.
            held = request.channel.transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
            return b"%d" % held
        fd = os.open(self.path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        request.setHeader(b"content-length", b"%d" % size)
        if not sendfile_ready(request):
            with os.fdopen(fd, "rb") as handle:
                return handle.read()
        request.setHeader(b"x-unused", b"too late to matter")
        done = send_span(request, fd, 0, size)

        def finished(result: Any) -> Any:
            os.close(fd)
            if not request.client_gone:
                request.finish()
            return None

        done.addBoth(finished)
        return server.NOT_DONE_YET


def main() -> None:
    site = server.Site(FileResource(sys.argv[1]))
    site.requestFactory = CaddyRequest
    site.protocol = fast_channel_protocol  # type: ignore[assignment]
    loop: Any = reactor
    port = loop.listenTCP(0, site, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    loop.run()


if __name__ == "__main__":
    main()
