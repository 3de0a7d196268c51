"""The admin API's listener: follows ``admin`` in each loaded config.

A config that moves ``admin.listen`` or sets ``admin.disabled`` takes effect after
the response to the request that loaded it has been sent (as Caddy). Failing to
bind the admin address is logged and the servers keep running, so several
instances on one machine (tests) do not fail over the default ``localhost:2019``.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from caddytw.admin.api import AdminAPI, AdminResponse, ApiError, error_response
from caddytw.admin.origins import AdminAddress, parse_admin_listen
from caddytw.config.model import AdminConfig, Config
from caddytw.wire.drain import drain

log = Logger()

ADMIN_GRACE = 5.0
#: The largest admin request body (a config to load). Caddy reads admin bodies without a
#: bound; configs are small JSON, so 100 MiB leaves room for huge generated ones while a
#: runaway client can neither fill the disk (twisted spools bodies to a temporary file)
#: nor the memory ``render`` reads it into.
MAX_ADMIN_BODY = 100 << 20


class AdminRequest(server.Request):
    """twisted.web's request with a bounded body: 413 and close past
    :data:`MAX_ADMIN_BODY`, declared (refused before ``100 Continue`` and before a byte
    is stored) or chunked (stopped where it passes the bound)."""

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
            return server.NOT_DONE_YET
        return self._write(answer, request)

    def _write(self, answer: AdminResponse, request: Any) -> bytes:
        request.responseHeaders.removeHeader(b"server")
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
        body = self._write(answer, request)
        if not request._disconnected:
            request.write(body)
            request.finish()

    def _crashed(self, failure: Failure, request: Any) -> None:
        log.failure("admin request failed", failure)
        self._send(error_response(ApiError(500, failure.getErrorMessage())), request)


class AdminSite(server.Site):
    displayTracebacks = False
    noisy = False
    requestFactory = AdminRequest

    def __init__(self, root: Any, reactor: Any) -> None:
        super().__init__(root, reactor=reactor)
        self.connections: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self.connections.add(protocol)
        original = protocol.connectionLost

        def lost(reason: Any) -> None:
            self.connections.discard(protocol)
            original(reason)

        protocol.connectionLost = lost
        return protocol

    def log(self, request: Any) -> None:
        """Admin requests are not access-logged."""


class AdminService(Service):
    """Runs the admin API on the address the current config names."""

    def __init__(self, live: Any, reactor: Any) -> None:
        self.live = live
        self.reactor = reactor
        self.api = AdminAPI(live, self._stop_process)
        self.site = AdminSite(AdminResource(self.api, reactor), reactor)
        self.port: Any = None
        self.current: AdminConfig | None = None
        live.on_load.append(self._config_loaded)

    def startService(self) -> None:
        super().startService()
        self._open(self.live.config.admin if self.live.config else AdminConfig())

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return self._close()

    def _config_loaded(self, config: Config) -> None:
        if not self.running or config.admin == self.current:
            return
        # Let the response of the loading request go out on the old listener first.
        self.reactor.callLater(0, self._reopen, config.admin)

    def _reopen(self, admin: AdminConfig) -> None:
        if not self.running:
            return
        if (
            self.current is not None
            and admin.listen == self.current.listen
            and (admin.disabled == self.current.disabled)
        ):
            self.current = admin
            return
        self._close().addCallback(lambda _: self._open(admin))

    def _open(self, admin: AdminConfig) -> None:
        self.current = admin
        if admin.disabled:
            log.info("admin endpoint disabled")
            return
        try:
            address = parse_admin_listen(admin.listen)
        except ValueError as error:
            log.error("admin endpoint not started: {error}", error=str(error))
            return
        self.api.address = address
        try:
            self.port = self._listen(address)
        except Exception as error:
            log.error(
                "admin endpoint not started on {address}: {error}",
                address=address.display,
                error=str(error),
            )
            return
        log.info("admin endpoint started on {address}", address=address.display)

    def _listen(self, address: AdminAddress) -> Any:
        if address.network == "unix":
            return self.reactor.listenUNIX(address.path, self.site)
        return self.reactor.listenTCP(address.port, self.site, interface=address.bind_host)

    def _close(self) -> Deferred[Any]:
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        stopped = maybeDeferred(port.stopListening)
        return stopped.addCallback(
            lambda _: drain(list(self.site.connections), ADMIN_GRACE, self.reactor)
        )

    def _stop_process(self) -> None:
        """``POST /stop``: a graceful shutdown of the whole process."""
        log.info("stopping on request of the admin API")
        if self.reactor.running:
            self.reactor.stop()
