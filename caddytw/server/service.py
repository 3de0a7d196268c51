"""The running server: one twisted ``Service`` that owns every configured listener.

:mod:`caddytw.server.build` does all the work that can fail before anything listens, so a
bad config never disturbs a running one.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from caddytw.config.autosave import Autosaver
from caddytw.config.listen import ListenAddress
from caddytw.config.model import Config
from caddytw.http.build import BuildContext
from caddytw.http.site import CaddySite
from caddytw.server.build import BuiltServer, default_reactor
from caddytw.server.listeners import listen
from caddytw.tls.challenges import install_http01_gate
from caddytw.tls.runtime import TLSRuntime

log = Logger()


class CaddyService(MultiService):
    """The twistd-facing service: a :class:`Runtime` (config, servers, listeners), the TLS
    runtime and the admin API, with graceful shutdown (``apps.http.grace_period``)."""

    def __init__(self, data: Any, reactor: Any = None) -> None:
        from caddytw.admin.service import AdminService
        from caddytw.server.reload import Runtime

        super().__init__()
        self.reactor = default_reactor(reactor)
        self._h3: dict[int, Any] = {}
        self.runtime = Runtime(self.reactor, self, self._listen, self._swap, on_close=self._closed)
        self.runtime.load(data)
        self.tls = TLSRuntime(self.config, self.reactor)
        self.tls.setServiceParent(self)
        self._tls_key = _tls_key(self.config)
        self.runtime.prepare.append(self._prepare_tls)
        self.admin = AdminService(self.runtime, self.reactor)
        self.admin.setServiceParent(self)
        # Every config that runs is saved for ``caddytw run --resume``, as Caddy does.
        self.autosave = Autosaver(self.reactor)
        self.runtime.on_load.append(self._autosave)

    @property
    def config(self) -> Config:
        assert self.runtime.config is not None
        return self.runtime.config

    @property
    def servers(self) -> list[BuiltServer]:
        return self.runtime.servers

    def load(self, data: Any) -> Any:
        """Switch to a new config without dropping connections (see ``Runtime.load``)."""
        return self.runtime.load(data)

    def startService(self) -> None:
        self.runtime.start()
        super().startService()
        self.autosave(self.runtime.raw)

    def _autosave(self, _config: Config) -> None:
        self.autosave(self.runtime.raw)

    def _prepare_tls(self, config: Config) -> None:
        """A reload that changes TLS settings gets a new TLS runtime (certificates are
        loaded from storage again; unchanged settings keep the running one)."""
        key = _tls_key(config)
        if key == self._tls_key:
            return
        old, self.tls = self.tls, TLSRuntime(config, self.reactor)
        self._tls_key = key
        old.disownServiceParent()
        self.tls.setServiceParent(self)

    def _listen(self, address: ListenAddress, site: CaddySite) -> Any:
        """Open one listener for ``site`` (None for address kinds served elsewhere)."""
        if address.network == "fdgram":
            return self._listen_fdgram(address, site)
        if address.network.startswith("udp"):
            return None
        server = site.caddy_server.config
        port = listen(self.reactor, address, site, server, self.tls)
        log.info(
            "server {name} listening on {address}",
            name=site.caddy_server.name,
            address=port.getHost(),
        )
        # HTTP/3 beside a TLS listener; not beside an inherited one, whose UDP socket
        # comes the same way (``fdgram/N``), as in Caddy.
        if self.tls.is_tls(server.name) and address.network != "fd":
            self._listen_h3(site, address, port)
        return port

    def _listen_h3(self, site: CaddySite, address: ListenAddress, tcp_port: Any) -> None:
        """HTTP/3 on the same port number over UDP, as Caddy does for TLS servers.

        With ``--workers``, only worker 0 opens it (QUIC cannot be spread over
        processes by SO_REUSEPORT); the others still advertise it.
        """
        from caddytw.server.workers.supervisor import serves_udp
        from caddytw.wire.h3.integration import start_h3, wants_h3

        if not serves_udp():
            if wants_h3(site.caddy_server.config.protocols):
                from caddytw.wire.h3.altsvc import advertise_h3

                advertise_h3(site, [tcp_port.getHost().port])
            return
        built = BuiltServer(site.caddy_server.config, site, BuildContext(self.reactor))
        h3_port = start_h3(
            self.reactor,
            built,
            address.host,
            tcp_port.getHost().port,
            self.tls.certificate_provider,
        )
        if h3_port is not None:
            self._h3[id(tcp_port)] = h3_port

    def _listen_fdgram(self, address: ListenAddress, site: CaddySite) -> Any:
        """HTTP/3 on an inherited datagram socket (``fdgram/N``, Caddy's ``bind
        fdgram/...`` with ``protocols h3``)."""
        from caddytw.server.listeners import AdoptedUDP
        from caddytw.wire.h3.integration import start_h3

        built = BuiltServer(site.caddy_server.config, site, BuildContext(self.reactor))
        reactor = AdoptedUDP(self.reactor, address.descriptor())
        port = start_h3(reactor, built, "", 0, self.tls.certificate_provider)
        if port is not None:
            log.info(
                "server {name} serving HTTP/3 on {address}",
                name=built.config.name,
                address=port.getHost(),
            )
        return port

    def _swap(self, listener: Any, site: CaddySite) -> None:
        """Point an open listener at a new site (a reload kept its address)."""
        port = listener.port
        if listener.address.network == "fdgram":
            port.protocol.site = site
            return
        server = site.caddy_server.config
        secure = self.tls.is_tls(server.name)
        if secure:
            creator = self.tls.connection_creator(server)
            port.factory = TLSMemoryBIOFactory(creator, False, site)
        else:
            install_http01_gate(site, self.tls.challenges)
            port.factory = site
        h3_port = self._h3.get(id(port))
        if h3_port is not None:
            from caddytw.wire.h3.altsvc import advertise_h3

            h3_port.protocol.site = site
            advertise_h3(site, [h3_port.getHost().port])

    def _closed(self, listener: Any) -> None:
        h3_port = self._h3.pop(id(listener.port), None)
        if h3_port is not None:
            h3_port.stopListening()

    def stopService(self) -> Any:
        stopped = self.runtime.stop()
        return stopped.addCallback(lambda _: maybeDeferred(super(CaddyService, self).stopService))

    def bound_ports(self, server: str | None = None) -> list[int]:
        """The actual ports (useful with port 0 in tests and embedding)."""
        return self.runtime.bound_ports(server)


def _tls_key(config: Config) -> Any:
    """What the TLS runtime is built from, to tell whether a reload changes it."""
    return repr(
        (
            config.tls,
            config.storage,
            config.http.http_port,
            config.http.https_port,
            [
                (s.name, s.listen, s.tls_connection_policies, s.automatic_https, s.protocols)
                for s in config.http.servers
            ],
        )
    )
