"""``dynamic_upstreams``: the upstream list looked up in DNS per request, as Caddy's.

Sources (``"source"`` names the module, as in Caddy's JSON):

* ``a``: the A and AAAA records of ``name``, each dialed at ``port`` (``versions``
  picks ``ipv4``/``ipv6``; both by default);
* ``srv``: the SRV records of ``_service._proto.name`` (or ``name`` as written when
  ``service`` and ``proto`` are empty), in priority order, dialed at target:port;
* ``multi``: the upstreams of every source in ``sources``, in order.

``name``, ``port``, ``service`` and ``proto`` may hold placeholders, filled in per
request. Answers are kept for ``refresh`` (1 minute by default) per looked-up name, so
most requests never wait for DNS. ``resolver.addresses`` sends the queries to those
servers (``[udp/|tcp/]host[:port]``, port 53 by default) instead of the system's
(``/etc/resolv.conf`` and ``/etc/hosts``); ``dial_timeout`` bounds one query.

Lookups go through ``twisted.names`` on the reactor: nothing blocks. A failed lookup
makes the handler fall back to its static ``upstreams`` (none: 503), as Caddy does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger

from caddytw.config.errors import ConfigError
from caddytw.config.netaddr import host_and_port
from caddytw.config.reader import ObjectReader, join_path
from caddytw.http.placeholders import Template

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest

log = Logger()

DEFAULT_REFRESH = 60.0
#: Go's resolver gives up on a server after 5 s; twisted's default would wait 60.
DEFAULT_QUERY_TIMEOUT = 5.0

#: ``(host, port)`` pairs, in the order the source gives them.
Addresses = list[tuple[str, int]]


@dataclass(frozen=True)
class ResolverConfig:
    """How a source asks DNS: explicit servers or the system's, and a query timeout."""

    servers: tuple[tuple[str, int], ...] = ()
    timeout: float = DEFAULT_QUERY_TIMEOUT

    def make(self) -> Any:
        from twisted.names import client  # only a config with dynamic upstreams resolves

        if not self.servers:
            return client.createResolver()
        # Two tries per server, the second after the first timed out.
        tries = (max(self.timeout / 3, 0.1), max(self.timeout * 2 / 3, 0.1))
        return client.Resolver(servers=list(self.servers), timeout=tries)


class Cache:
    """Looked-up addresses per name, each kept for ``refresh`` seconds; one query in
    flight per name (requests arriving meanwhile wait for the same answer)."""

    def __init__(self, refresh: float, reactor: Any) -> None:
        self.refresh = refresh
        self.reactor = reactor
        self.entries: dict[str, tuple[float, Addresses]] = {}
        self.pending: dict[str, list[Deferred[Addresses]]] = {}

    def get(self, key: str, lookup: Any) -> Deferred[Addresses]:
        entry = self.entries.get(key)
        if entry is not None and entry[0] > self.reactor.seconds():
            return succeed(list(entry[1]))
        waiter: Deferred[Addresses] = Deferred()
        waiting = self.pending.get(key)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self.pending[key] = [waiter]

        def done(result: Any) -> None:
            waiters = self.pending.pop(key, [])
            if isinstance(result, list):
                self.entries[key] = (self.reactor.seconds() + self.refresh, result)
            for each in waiters:
                if isinstance(result, list):
                    each.callback(list(result))
                else:
                    each.errback(result)

        lookup().addBoth(done)
        return waiter


class Source:
    """One ``dynamic_upstreams`` source; ``lookup`` gives its addresses for a request."""

    def lookup(self, request: CaddyRequest) -> Deferred[Addresses]:
        raise NotImplementedError


@dataclass(kw_only=True)
class DNSSource(Source):
    """A source that asks DNS: its resolver (made on first use) and answer cache."""

    resolver: ResolverConfig
    refresh: float
    reactor: Any = None
    cache: Cache = field(init=False)
    _resolver: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.cache = Cache(self.refresh, self.reactor)

    def dns(self) -> Any:
        if self._resolver is None:
            self._resolver = self.resolver.make()
        return self._resolver


@dataclass(kw_only=True)
class ASource(DNSSource):
    name: Template
    port: Template
    ipv4: bool = True
    ipv6: bool = True

    def lookup(self, request: CaddyRequest) -> Deferred[Addresses]:
        name = self.name.render(request)
        port_text = self.port.render(request)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return _failed(ValueError(f"invalid port {port_text!r} for A lookup of {name!r}"))
        port = int(port_text)
        return self.cache.get(f"{name}:{port}", lambda: self._query(name, port))

    def _query(self, name: str, port: int) -> Deferred[Addresses]:
        queries = []
        if self.ipv4:
            queries.append(self.dns().lookupAddress(name))
        if self.ipv6:
            queries.append(self.dns().lookupIPV6Address(name))
        both: Deferred[Any] = DeferredList(queries, consumeErrors=True)

        def combine(results: list[tuple[bool, Any]]) -> Addresses:
            from twisted.names import dns

            found: Addresses = []
            errors = []
            for ok, value in results:
                if not ok:
                    errors.append(value.getErrorMessage())
                    continue
                for record in value[0]:  # A/AAAA at the end of any CNAME chain
                    if record.type == dns.A:
                        found.append((record.payload.dottedQuad(), port))
                    elif record.type == dns.AAAA:
                        found.append((_ipv6(record.payload), port))
            if not found:
                raise LookupError(f"no addresses for {name!r}: {'; '.join(errors) or 'empty'}")
            return found

        return both.addCallback(combine)


@dataclass(kw_only=True)
class SRVSource(DNSSource):
    service: Template
    proto: Template
    name: Template

    def lookup(self, request: CaddyRequest) -> Deferred[Addresses]:
        service, proto = self.service.render(request), self.proto.render(request)
        name = self.name.render(request)
        if service or proto:
            name = f"_{service}._{proto}.{name}"
        return self.cache.get(name, lambda: self._query(name))

    def _query(self, name: str) -> Deferred[Addresses]:
        def addresses(result: Any) -> Addresses:
            from twisted.names import dns

            records = [r.payload for r in result[0] if r.type == dns.SRV]
            # Lowest priority first; among equals the heavier first (Go randomises by
            # weight; the load balancing policy picks among them anyway).
            records.sort(key=lambda srv: (srv.priority, -srv.weight))
            found = [(str(srv.target).rstrip("."), srv.port) for srv in records]
            if not found:
                raise LookupError(f"no SRV records for {name!r}")
            return found

        return self.dns().lookupService(name).addCallback(addresses)


@dataclass
class MultiSource(Source):
    sources: tuple[Source, ...]

    def lookup(self, request: CaddyRequest) -> Deferred[Addresses]:
        queries = [source.lookup(request) for source in self.sources]
        every: Deferred[Any] = DeferredList(queries, consumeErrors=True)

        def combine(results: list[tuple[bool, Any]]) -> Addresses:
            found: Addresses = []
            for ok, value in results:
                if ok:
                    found.extend(value)
                else:  # as Caddy: one failing source is logged, the others still count
                    log.warn("dynamic upstreams: {error}", error=value.getErrorMessage())
            return found

        return every.addCallback(combine)


def _ipv6(payload: Any) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET6, payload.address)


def _failed(error: Exception) -> Deferred[Addresses]:
    d: Deferred[Addresses] = Deferred()
    d.errback(error)
    return d


def _resolver(reader: ObjectReader, timeout: float | None) -> ResolverConfig:
    servers = []
    if reader.has("resolver"):
        resolver = reader.reader("resolver")
        for index, address in enumerate(resolver.strings("addresses")):
            servers.append(_resolver_address(address, join_path(resolver.at("addresses"), index)))
        resolver.done()
    return ResolverConfig(tuple(servers), timeout or DEFAULT_QUERY_TIMEOUT)


def _resolver_address(text: str, path: str) -> tuple[str, int]:
    network, slash, rest = text.partition("/")
    if not slash:
        network, rest = "udp", text
    if network not in ("udp", "tcp", "udp4", "udp6", "tcp4", "tcp6"):
        raise ConfigError(path, f"unsupported resolver network {network!r}")
    host, port = host_and_port(rest)
    if not port:
        host, port = rest.strip("[]"), "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(path, f"invalid resolver address {text!r}")
    return host, int(port)


def _common(reader: ObjectReader) -> tuple[ResolverConfig, float]:
    refresh = reader.duration("refresh", None) or DEFAULT_REFRESH
    if refresh < 0:
        raise ConfigError(reader.at("refresh"), "must not be negative")
    timeout = reader.duration("dial_timeout", None)
    reader.duration("dial_fallback_delay", None)  # for DNS over TCP; queries go over UDP
    reader.duration("grace_period", None)
    return _resolver(reader, timeout), refresh


def parse_source(reader: ObjectReader, reactor: Any) -> Source:
    """One source object (``{"source": "a"|"srv"|"multi", ...}``)."""
    kind = reader.text("source")
    source: Source
    if kind == "a":
        resolver, refresh = _common(reader)
        name = reader.text("name")
        if not name:
            raise ConfigError(reader.at("name"), "a name to look up is required")
        versions = reader.reader("versions")
        ipv4, ipv6 = versions.flag("ipv4"), versions.flag("ipv6")
        versions.done()
        if not ipv4 and not ipv6:
            ipv4 = ipv6 = True
        port = reader.text("port") or "80"
        source = ASource(
            name=Template(name),
            port=Template(port),
            ipv4=ipv4,
            ipv6=ipv6,
            resolver=resolver,
            refresh=refresh,
            reactor=reactor,
        )
    elif kind == "srv":
        resolver, refresh = _common(reader)
        service, proto, name = reader.text("service"), reader.text("proto"), reader.text("name")
        if not name:
            raise ConfigError(reader.at("name"), "a name to look up is required")
        if bool(service) != bool(proto):
            raise ConfigError(reader.path, "service and proto go together (or both empty)")
        source = SRVSource(
            service=Template(service),
            proto=Template(proto),
            name=Template(name),
            resolver=resolver,
            refresh=refresh,
            reactor=reactor,
        )
    elif kind == "multi":
        items = reader.array("sources")
        source = MultiSource(
            tuple(
                parse_source(ObjectReader(item, join_path(reader.at("sources"), index)), reactor)
                for index, item in enumerate(items)
            )
        )
    else:
        raise ConfigError(
            reader.at("source"),
            f"unknown dynamic upstreams source {kind!r} (caddytw has a, srv and multi)",
        )
    reader.done()
    return source


def lookup_srv_source(upstreams: Any, reactor: Any) -> Source | None:
    """Caddy 2.6's deprecated ``lookup_srv`` upstreams (the Caddyfile's ``srv+``
    addresses) as ``srv`` sources over the system resolver; None when there are none."""
    sources: list[Source] = [
        SRVSource(
            service=Template(""),
            proto=Template(""),
            name=Template(u.lookup_srv),
            resolver=ResolverConfig(),
            refresh=DEFAULT_REFRESH,
            reactor=reactor,
        )
        for u in upstreams
        if u.lookup_srv
    ]
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else MultiSource(tuple(sources))
