"""The admin API's listener: follows ``admin`` in each loaded config.

A config that moves ``admin.listen`` or sets ``admin.disabled`` takes effect after
the response to the request that loaded it has been sent (as Caddy). Failing to
bind the admin address is logged and the servers keep running, so several
instances on one machine (tests) do not fail over the default ``localhost:2019``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger

from caddytw.admin.origins import AdminAddress, parse_admin_listen
from caddytw.config.model import AdminConfig, Config
from caddytw.wire.drain import drain

if TYPE_CHECKING:
    from caddytw.admin.api import AdminAPI
    from caddytw.admin.web import AdminSite

log = Logger()

ADMIN_GRACE = 5.0


class AdminService(Service):
    """Runs the admin API on the address the current config names."""

    def __init__(self, live: Any, reactor: Any) -> None:
        self.live = live
        self.reactor = reactor
        #: The API and its site, made by the first config that enables the endpoint.
        self.api: AdminAPI | None = None
        self.site: AdminSite | None = None
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
        site = self._site()
        assert self.api is not None
        self.api.address = address
        if address.network == "unix":
            return self.reactor.listenUNIX(address.path, site)
        return self.reactor.listenTCP(address.port, site, interface=address.bind_host)

    def _site(self) -> AdminSite:
        """The admin API's site, made the first time an endpoint opens: a process whose
        configs disable the admin endpoint never imports the API
        (:mod:`caddytw.admin.web`)."""
        if self.site is None:
            from caddytw.admin.api import AdminAPI
            from caddytw.admin.web import AdminResource, AdminSite

            self.api = AdminAPI(self.live, self._stop_process)
            self.site = AdminSite(AdminResource(self.api, self.reactor), self.reactor)
        return self.site

    def _close(self) -> Deferred[Any]:
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        stopped = maybeDeferred(port.stopListening)
        connections = self.site.connections if self.site is not None else set()
        return stopped.addCallback(lambda _: drain(list(connections), ADMIN_GRACE, self.reactor))

    def _stop_process(self) -> None:
        """``POST /stop``: a graceful shutdown of the whole process."""
        log.info("stopping on request of the admin API")
        if self.reactor.running:
            self.reactor.stop()
