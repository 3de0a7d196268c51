"""Stand-alone ACME challenge listeners, started only when no server can answer.

Caddy answers HTTP-01 on ``http_port`` from its own servers; when none listens there
(redirects disabled, no HTTP server) or an issuer sets ``challenges.*.alternate_port``,
it opens a listener just for challenges. This does the same: HTTP-01 on a plain port
(404 for anything else) and TLS-ALPN-01 on a TLS port (no certificate but the
challenge one, so any other handshake fails).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import resource, server

from caddytw.tls.automation import HTTPSPlan
from caddytw.tls.certs import CertificateSelector
from caddytw.tls.challenges import ChallengeRegistry, HTTP01Gate
from caddytw.tls.config import ConnectionPolicy
from caddytw.tls.context import SNIConnectionCreator


class _NotFound(resource.Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setResponseCode(404)
        return b""


class _SolverSite(server.Site):
    displayTracebacks = False

    def log(self, request: Any) -> None:
        """Challenge traffic is not an access log's business."""


class _Closer(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


def solver_ports(plan: HTTPSPlan) -> tuple[set[int], set[int]]:
    """(HTTP-01 ports, TLS-ALPN-01 ports) that need a dedicated listener."""
    http_ports: set[int] = set()
    alpn_ports: set[int] = set()
    http_port = plan.config.http.http_port
    served = {a.port for s in plan.config.http.servers for a in s.listen if not plan.is_tls(s.name)}
    for managed in plan.managed.values():
        for issuer in managed.issuers:
            if issuer.module != "acme":
                continue
            if not issuer.http.disabled:
                port = issuer.http.alternate_port or http_port
                if port not in served:
                    http_ports.add(port)
            if not issuer.tls_alpn.disabled and issuer.tls_alpn.alternate_port:
                alpn_ports.add(issuer.tls_alpn.alternate_port)
    return http_ports, alpn_ports


def listen_solvers(reactor: Any, plan: HTTPSPlan, registry: ChallengeRegistry) -> list[Any]:
    """Open the listeners :func:`solver_ports` asks for; returns the ports."""
    http_ports, alpn_ports = solver_ports(plan)
    # Bind where the TLS servers bind (all interfaces when they do).
    host = next(
        (a.host for s in plan.config.http.servers if plan.is_tls(s.name) for a in s.listen), ""
    )
    ports = []
    for port in sorted(http_ports):
        site = _SolverSite(HTTP01Gate(registry, _NotFound()), reactor=reactor)
        ports.append(reactor.listenTCP(port, site, interface=host))
    for port in sorted(alpn_ports):
        creator = SNIConnectionCreator(
            [ConnectionPolicy()], [], CertificateSelector(), registry, "tls-alpn-solver"
        )
        factory = TLSMemoryBIOFactory(creator, False, Factory.forProtocol(_Closer))
        ports.append(reactor.listenTCP(port, factory, interface=host))
    return ports
