"""DNS-01 answers through RFC 2136 dynamic updates signed with TSIG (``rfc2136``).

Runs in the ACME worker thread (dnspython is blocking). The record goes into the
zone that holds ``_acme-challenge.NAME`` (found by asking the server for the SOA of
each parent in turn), then the solver waits until the TXT answers from the
``resolvers`` (or the server itself) before telling the CA: a CA that asks too early
fails the order. Cleanup deletes exactly the value it added, so parallel orders for
the same name (wildcard plus apex) do not remove each other's records.
"""

from __future__ import annotations

import time

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from caddytw.tls.config import DNSChallengeConfig, RFC2136Provider

DEFAULT_TTL = 120
QUERY_TIMEOUT = 5.0
POLL_INTERVAL = 0.2


class DNSError(Exception):
    """A DNS update or propagation check failed; the message says which and why."""


def split_address(address: str, default_port: int = 53) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` -> (host, port)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port)
    return address, default_port


class RFC2136Solver:
    """Adds and removes ``_acme-challenge`` TXT records on one DNS server."""

    def __init__(self, provider: RFC2136Provider, config: DNSChallengeConfig) -> None:
        self.provider = provider
        self.config = config
        self.host, self.port = split_address(provider.server)
        self.keyring = (
            dns.tsigkeyring.from_text({provider.key_name: provider.key})
            if provider.key_name
            else None
        )

    def record_name(self, identifier: str) -> str:
        """``_acme-challenge.NAME`` (a wildcard's base name), or ``override_domain``
        as it stands (certmagic: a delegated challenge record's full name)."""
        if self.config.override_domain:
            return self.config.override_domain.rstrip(".") + "."
        return f"_acme-challenge.{identifier.removeprefix('*.')}".rstrip(".") + "."

    def present(self, identifier: str, value: str) -> None:
        name = dns.name.from_text(self.record_name(identifier))
        zone = self._zone(name)
        update = self._update(zone)
        ttl = int(self.config.ttl) or DEFAULT_TTL
        update.add(name, ttl, "TXT", f'"{value}"')
        self._send(update, f"adding TXT {name}")
        self._wait_visible(name, value)

    def cleanup(self, identifier: str, value: str) -> None:
        name = dns.name.from_text(self.record_name(identifier))
        zone = self._zone(name)
        update = self._update(zone)
        update.delete(name, "TXT", f'"{value}"')
        self._send(update, f"deleting TXT {name}")

    # -- DNS traffic -----------------------------------------------------------------

    def _update(self, zone: dns.name.Name) -> dns.update.UpdateMessage:
        if self.keyring is None:
            return dns.update.UpdateMessage(zone)
        return dns.update.UpdateMessage(
            zone,
            keyring=self.keyring,
            keyname=dns.name.from_text(self.provider.key_name),
            keyalgorithm=dns.name.from_text(self.provider.key_alg),
        )

    def _send(self, message: dns.message.Message, what: str) -> None:
        import dns.query  # with dnspython's QUIC/HTTPS transports: only when solving

        try:
            response = dns.query.tcp(message, self.host, timeout=QUERY_TIMEOUT, port=self.port)
        except (OSError, dns.exception.DNSException) as error:
            raise DNSError(f"{what} at {self.provider.server}: {error}") from error
        if response.rcode() != dns.rcode.NOERROR:
            raise DNSError(
                f"{what} at {self.provider.server}: {dns.rcode.to_text(response.rcode())}"
            )

    def _zone(self, name: dns.name.Name) -> dns.name.Name:
        """The closest enclosing zone the server is authoritative for."""
        import dns.query

        candidate = name
        while candidate != dns.name.root:
            query = dns.message.make_query(candidate, dns.rdatatype.SOA)
            try:
                response = dns.query.tcp(query, self.host, timeout=QUERY_TIMEOUT, port=self.port)
            except (OSError, dns.exception.DNSException) as error:
                raise DNSError(
                    f"finding the zone of {name} at {self.provider.server}: {error}"
                ) from error
            if any(
                rrset.rdtype == dns.rdatatype.SOA and rrset.name == candidate
                for rrset in response.answer
            ):
                return candidate
            candidate = candidate.parent()
        raise DNSError(f"{self.provider.server} is authoritative for no zone holding {name}")

    def _wait_visible(self, name: dns.name.Name, value: str) -> None:
        if self.config.propagation_delay > 0:
            time.sleep(self.config.propagation_delay)
        if self.config.propagation_timeout < 0:
            return
        servers = [split_address(r) for r in self.config.resolvers] or [(self.host, self.port)]
        deadline = time.monotonic() + self.config.propagation_timeout
        while True:
            if all(self._has_txt(host, port, name, value) for host, port in servers):
                return
            if time.monotonic() > deadline:
                raise DNSError(f"TXT {name} did not appear within the propagation timeout")
            time.sleep(POLL_INTERVAL)

    @staticmethod
    def _has_txt(host: str, port: int, name: dns.name.Name, value: str) -> bool:
        import dns.query

        query = dns.message.make_query(name, dns.rdatatype.TXT)
        try:
            response = dns.query.udp(query, host, timeout=QUERY_TIMEOUT, port=port)
        except (OSError, dns.exception.DNSException):
            return False
        for rrset in response.answer:
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.TXT and b"".join(rdata.strings) == value.encode():
                    return True
        return False
