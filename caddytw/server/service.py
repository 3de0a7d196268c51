"""The running server: the twisted ``Service`` that ``twistd caddy`` (and the library's
``build_service``) starts.

It holds a :class:`~caddytw.server.reload.LiveConfig` (the built config, its TLS runtime
and its listeners) and the admin API, and nothing else: building happens in
:mod:`caddytw.server.build` before anything listens, listening and reloading in
:mod:`caddytw.server.reload`, so a bad config never disturbs a running one.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, maybeDeferred

from caddytw.config.autosave import Autosaver
from caddytw.config.model import Config
from caddytw.server.build import BuiltServer, default_reactor
from caddytw.server.reload import LiveConfig


class CaddyService(MultiService):
    """The twistd-facing service: the live config (servers, TLS, listeners) and the
    admin API, with graceful shutdown (``apps.http.grace_period``)."""

    def __init__(self, data: Any, reactor: Any = None) -> None:
        from caddytw.admin.service import AdminService

        super().__init__()
        self.reactor = default_reactor(reactor)
        self.live = LiveConfig(self.reactor, self)
        self.live.load(data)
        self.admin = AdminService(self.live, self.reactor)
        self.admin.setServiceParent(self)
        # Every config that runs is saved for ``caddytw run --resume``, as Caddy does.
        self.autosave = Autosaver(self.reactor)
        self.live.on_load.append(self._autosave)

    @property
    def config(self) -> Config:
        assert self.live.config is not None
        return self.live.config

    @property
    def servers(self) -> list[BuiltServer]:
        return self.live.servers

    def load(self, data: Any) -> Deferred[None]:
        """Switch to a new config without dropping connections (see ``LiveConfig.load``)."""
        return self.live.load(data)

    def _autosave(self, _config: Config) -> None:
        self.autosave(self.live.raw)

    def startService(self) -> None:
        self.live.start()
        super().startService()
        self.autosave(self.live.raw)

    def stopService(self) -> Any:
        stopped = self.live.stop()
        return stopped.addCallback(lambda _: maybeDeferred(super(CaddyService, self).stopService))

    def bound_ports(self, server: str | None = None) -> list[int]:
        """The actual ports (useful with port 0 in tests and embedding)."""
        return self.live.bound_ports(server)
