"""The admin API's listener: follows ``admin`` in each loaded config.

A config that moves ``admin.listen`` or sets ``admin.disabled`` takes effect after
the response to the request that loaded it has been sent (as Caddy). Failing to
bind the admin address is logged and the servers keep running, so several
instances on one machine (tests) do not fail over the default ``localhost:2019``.
"""

from __future__ import annotations

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

    def __init__(self, runtime: Any, reactor: Any) -> None:
        self.runtime = runtime
        self.reactor = reactor
        self.api = AdminAPI(runtime, self._stop_process)
        self.site = AdminSite(AdminResource(self.api, reactor), reactor)
        self.port: Any = None
        self.current: AdminConfig | None = None
        runtime.on_load.append(self._config_loaded)

    def startService(self) -> None:
        super().startService()
        self._open(self.runtime.config.admin if self.runtime.config else AdminConfig())

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
