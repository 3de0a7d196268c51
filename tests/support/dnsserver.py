"""A real DNS server for tests, run as its own process:
``python dnsserver.py PORT ZONE.json``, answering on UDP 127.0.0.1:PORT.

``ZONE.json`` is read again for every query, so a test changes the answers by
rewriting it: ``{"A": {"name": ["127.0.0.1"]}, "SRV": {"_s._tcp.name":
[[priority, weight, port, "target"]]}}``. A name with no records of any type is
NXDOMAIN; a known name without the asked type answers empty. Built on
``twisted.names`` (the server side of the same library the proxy resolves with,
but speaking real DNS over a real socket to it).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import defer, reactor
from twisted.names import common, dns, error, server


class ZoneFile(common.ResolverBase):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> Any:
        with open(self.path, encoding="utf-8") as handle:
            zone = json.load(handle)
        text = name.decode("ascii").rstrip(".").lower()
        if not any(text in records for records in zone.values()):
            return defer.fail(error.DomainError(text))
        answers = []
        if type == dns.A:
            for address in zone.get("A", {}).get(text, []):
                payload: Any = dns.Record_A(address, ttl=0)
                answers.append(dns.RRHeader(name, dns.A, dns.IN, 0, payload, auth=True))
        elif type == dns.SRV:
            for priority, weight, port, target in zone.get("SRV", {}).get(text, []):
                payload = dns.Record_SRV(priority, weight, port, target, ttl=0)
                answers.append(dns.RRHeader(name, dns.SRV, dns.IN, 0, payload, auth=True))
        return defer.succeed((answers, [], []))


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    factory = server.DNSServerFactory(authorities=[ZoneFile(path)])
    reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.listenTCP(port, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
