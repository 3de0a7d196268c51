"""The TLS side of a running config: certificates, challenges, automation, contexts.

A :class:`TLSRuntime` runs one automatic-HTTPS plan, the one
:func:`caddytw.server.build.build_app` made (it never plans again);
:class:`caddytw.server.reload.LiveConfig` makes a new one when a reload changes the
TLS settings. It owns the :class:`CertificateSelector` (what HTTP/3 asks for
certificates too) and the certificate manager service, and publishes ACME challenges
into the live config's :class:`ChallengeRegistry` (which the sites' HTTP-01 gates and
the TLS contexts read); :mod:`caddytw.server.listeners` asks it whether a server speaks
TLS and for the server's connection creator.
"""

from __future__ import annotations

import threading
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.protocols.tls import TLSMemoryBIOFactory

from caddytw.config.model import ServerConfig
from caddytw.tls.automation import HTTPSPlan
from caddytw.tls.certs import CertificateSelector
from caddytw.tls.challenges import ChallengeRegistry
from caddytw.tls.config import IssuerConfig
from caddytw.tls.context import SNIConnectionCreator
from caddytw.tls.distributed import SharedChallenges
from caddytw.tls.hello import WaitingTLSFactory
from caddytw.tls.manager import CertificateManager
from caddytw.tls.ondemand import HandshakeCertificates
from caddytw.tls.storages import open_storage
from caddytw.tls.store import Storage
from caddytw.wire.negotiate import alpn_for


class TLSRuntime(MultiService):
    """Certificates and TLS settings for every server of one config."""

    def __init__(
        self, plan: HTTPSPlan, reactor: Any, challenges: ChallengeRegistry | None = None
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.plan = plan
        self.selector = CertificateSelector()
        for certificate in self.plan.loaded:
            self.selector.add(certificate)
        self.challenges = challenges if challenges is not None else ChallengeRegistry()
        self.storage: Storage = open_storage(self.plan.tls_app.storage)
        # Challenges go through the storage too, so any node can answer another's order.
        self.shared_challenges = SharedChallenges(self.storage, self.challenges, reactor)
        self.shared_challenges.setServiceParent(self)
        self.http_port = plan.config.http.http_port
        self.https_port = plan.config.http.https_port
        self._creators: dict[str, SNIConnectionCreator] = {}
        self.manager = CertificateManager(
            self.plan.managed,
            self.storage,
            self.selector,
            self.make_issuer,
            reactor,
            self.plan.tls_app.renew_interval,
        )
        self.manager.setServiceParent(self)
        self.handshake_certificates = HandshakeCertificates(
            self.plan, self.selector, self.manager, reactor, self.challenges
        )
        self.solver_ports: list[Any] = []

    def startService(self) -> None:
        # Challenge listeners first: the manager may order as soon as it starts. Only a
        # config that manages certificates can need one, and only it imports their
        # module (a twisted.web.server Site, with twisted.spread and xml.sax behind it).
        if self.plan.managed:
            from caddytw.tls.solvers import listen_solvers

            self.solver_ports = listen_solvers(self.reactor, self.plan, self.challenges)
        super().startService()

    def stopService(self) -> Any:
        from twisted.internet.defer import DeferredList, maybeDeferred

        stops = [maybeDeferred(port.stopListening) for port in self.solver_ports]
        self.solver_ports = []
        # Closing first cancels lock waits, so worker threads end and shutdown is quick;
        # in a thread of its own (it may talk to the database, and the reactor's pool
        # may be busy with the very orders it cancels).
        closed: Deferred[None] = Deferred()

        def close() -> None:
            try:
                self.storage.close()
            finally:
                self.reactor.callFromThread(closed.callback, None)

        threading.Thread(target=close, name="caddytw-tls-storage-close", daemon=True).start()
        return DeferredList([maybeDeferred(super().stopService), closed, *stops])

    def is_tls(self, server_name: str) -> bool:
        return self.plan.is_tls(server_name)

    def connection_creator(self, server: ServerConfig) -> SNIConnectionCreator:
        """The (cached) SNI-aware connection creator for a TLS server."""
        creator = self._creators.get(server.name)
        if creator is None:
            policies = self.plan.tls_servers.get(server.name, ())
            alpn = alpn_for(server.protocols, policies[0].alpn if policies else ())
            creator = SNIConnectionCreator(
                policies, alpn, self.selector, self.challenges, server.name
            )
            self._creators[server.name] = creator
        return creator

    def tls_factory(self, server: ServerConfig, site: Any) -> TLSMemoryBIOFactory:
        """The listening factory of a TLS server: when some policy gets certificates
        at handshake (on_demand, get_certificate), connections wait for them."""
        creator = self.connection_creator(server)
        if self.handshake_certificates.active:
            return WaitingTLSFactory(creator, site, self.handshake_certificates.prepare)
        return TLSMemoryBIOFactory(creator, False, site)

    def certificate_provider(self, server_name: str | None) -> tuple[list[Any], Any] | None:
        """``caddytw.wire.h3``'s ``CertificateProvider``: (chain, key) for a name, or None.

        The chain is ``cryptography`` certificates, leaf first; the same certificate
        the TLS listeners present (renewals and on-disk reloads included).
        """
        certificate = self.selector.select(server_name)
        if certificate is None:
            return None
        return certificate.certificates, certificate.private_key

    def make_issuer(self, config: IssuerConfig) -> Any:
        """Called in a worker thread by the manager. The issuer modules (acme, josepy,
        requests...) are imported here, by a config that orders certificates."""
        if config.module == "internal":
            from caddytw.tls.internal import InternalIssuer

            return InternalIssuer(config, self.storage)
        from caddytw.tls.acme import AcmeIssuer

        return AcmeIssuer(config, self.storage, self.shared_challenges.publisher())
