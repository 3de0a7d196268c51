"""The admin API's twisted.web face: its request (a bounded body), resource and site.

Imported by :class:`caddytw.admin.service.AdminService` when a config first enables the
admin endpoint. Built on ``twisted.web.http`` alone, as the servers are
(:mod:`caddytw.http.site`): twisted.web.server's ``Request`` walks a resource tree,
and this API is one leaf; that module would bring twisted.spread, twisted.cred and
xml.sax along (1.4 MB resident) into every process that runs the admin endpoint.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource

from caddytw.admin.api import AdminAPI, AdminResponse, ApiError, error_response
from caddytw.http.request import NOT_DONE_YET

log = Logger()

#: The largest admin request body (a config to load). Caddy reads admin bodies without a
#: bound; configs are small JSON, so 100 MiB leaves room for huge generated ones while a
#: runaway client can neither fill the disk (twisted spools bodies to a temporary file)
#: nor the memory ``render`` reads it into.
MAX_ADMIN_BODY = 100 << 20


class AdminRequest(http.Request):
    """twisted.web's request with a bounded body: 413 and close past
    :data:`MAX_ADMIN_BODY`, declared (refused before ``100 Continue`` and before a byte
    is stored) or chunked (stopped where it passes the bound). Answered by the site's
    :class:`AdminResource` (:meth:`process`)."""

    refused = False
    received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_ADMIN_BODY:
            # No ``100 Continue`` after the refusal (the channel sends it next).
            self.requestHeaders.removeHeader(b"expect")
            self.content = BytesIO()
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self.received > MAX_ADMIN_BODY:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:
            super().requestReceived(command, path, version)

    def process(self) -> None:
        """Answer with the site's :class:`AdminResource`. A failure answers 500 in the
        API's error shape (as a failed deferred answer does). ``Date`` is set, as Go's
        server sets it on every response."""
        channel: Any = self.channel
        admin: AdminResource = channel.site.resource
        self.setHeader(b"date", http.datetimeToString())
        try:
            body = admin.render(self)
        except Exception as error:
            log.failure("admin request failed")
            body = admin.answer(error_response(ApiError(500, str(error))), self)
        if body is not NOT_DONE_YET:
            self.write(body)
            self.finish()

    def _refuse(self) -> None:
        """Answer 413 in the admin API's error shape and close: the rest of the body
        is never read."""
        self.refused = True
        if self.content is not None:
            self.content.close()
        self.content = BytesIO()
        body = error_response(
            ApiError(413, f"request body too large (limit {MAX_ADMIN_BODY} bytes)")
        ).body
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.channel.loseConnection()


class AdminResource(resource.Resource):
    """twisted.web face of :class:`AdminAPI`: one leaf answering every path."""

    isLeaf = True

    def __init__(self, api: AdminAPI, reactor: Any) -> None:
        super().__init__()
        self.api = api
        self.reactor = reactor

    def render(self, request: Any) -> Any:
        headers = {
            name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        body = request.content.read() if request.content is not None else b""
        path = request.path.decode("utf-8", "replace")
        answer = self.api.handle(request.method.decode("ascii", "replace"), path, headers, body)
        if isinstance(answer, Deferred):
            answer.addCallback(self._send, request)
            answer.addErrback(self._crashed, request)
            return NOT_DONE_YET
        return self.answer(answer, request)

    def answer(self, answer: AdminResponse, request: Any) -> bytes:
        """Set ``answer``'s status and headers on ``request``; returns its body."""
        request.setResponseCode(answer.status)
        for name, value in answer.headers.items():
            request.setHeader(name, value)
        if answer.after is not None:
            request.setHeader("Connection", "close")
            callback = answer.after
            request.notifyFinish().addBoth(lambda _: self.reactor.callLater(0, callback))
        request.setHeader("Content-Length", str(len(answer.body)))
        return answer.body

    def _send(self, answer: AdminResponse, request: Any) -> None:
        body = self.answer(answer, request)
        if not request._disconnected:
            request.write(body)
            request.finish()

    def _crashed(self, failure: Failure, request: Any) -> None:
        log.failure("admin request failed", failure)
        self._send(error_response(ApiError(500, failure.getErrorMessage())), request)


class AdminSite(http.HTTPFactory):
    """twisted.web's HTTP/1.1 channels, each request an :class:`AdminRequest` answered
    by ``resource``; the open connections are kept for a graceful close."""

    noisy = False

    def __init__(self, root: AdminResource, reactor: Any) -> None:
        super().__init__(reactor=reactor)
        self.resource = root
        self.connections: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        protocol: Any = super().buildProtocol(addr)
        protocol.requestFactory = AdminRequest
        protocol.site = self
        self.connections.add(protocol)
        original = protocol.connectionLost

        def lost(reason: Any) -> None:
            self.connections.discard(protocol)
            original(reason)

        protocol.connectionLost = lost
        return protocol

    def log(self, request: Any) -> None:
        """Admin requests are not access-logged."""
