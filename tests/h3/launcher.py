"""Test-only launcher: a caddytw server with TLS (h1 + h2) and HTTP/3 on one port.

A TLS listener from a certificate file (no automatic HTTPS, no storage) per server
address (ALPN h2, http/1.1) and :func:`caddytw.wire.h3.integration.start_h3` on the
same port, as :mod:`caddytw.server.listeners` does for a TLS server. A second,
plain-HTTP port answers ``GET /stats`` with the h3 listener's counters and the reactor's
pending delayed calls (leak checks in the tests).

Usage: python -m tests.h3.launcher CONFIG CERT KEY STATS_PORT [--retry]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet import ssl
from twisted.web.resource import Resource
from twisted.web.server import Site

from caddytw.server.build import build_app
from caddytw.wire.h3.certs import load_pem_provider
from caddytw.wire.h3.integration import start_h3

reactor: Any = _reactor


class Stats(Resource):
    isLeaf = True

    def __init__(self, h3_ports: list[Any]) -> None:
        super().__init__()
        self.h3_ports = h3_ports

    def render_GET(self, request: Any) -> bytes:
        calls = [
            f"{getattr(c.func, '__module__', '?')}.{getattr(c.func, '__qualname__', c.func)}"
            for c in reactor.getDelayedCalls()
        ]
        return json.dumps(
            {"h3": [p.stats() for p in self.h3_ports], "delayed_calls": calls}
        ).encode()


def main(argv: list[str]) -> None:
    config_path, cert, key, stats_port = argv[:4]
    retry = "--retry" in argv
    with open(config_path) as handle:
        data = json.load(handle)
    servers = build_app(data, reactor).servers
    provider = load_pem_provider(cert, key)
    with open(cert, "rb") as c, open(key, "rb") as k:
        options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
    context = ssl.CertificateOptions(
        privateKey=options.privateKey,
        certificate=options.certificate,
        acceptableProtocols=[b"h2", b"http/1.1"],
    )
    h3_ports = []
    for built in servers:
        for address in built.config.listen:
            tcp = reactor.listenSSL(address.port, built.site, context, interface=address.host)
            number = tcp.getHost().port
            h3 = start_h3(reactor, built.site, address.host, number, provider, retry=retry)
            if h3 is not None:
                h3_ports.append(h3)
    reactor.listenTCP(int(stats_port), Site(Stats(h3_ports)), interface="127.0.0.1")
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
