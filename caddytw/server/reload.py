"""The live configuration, its TLS side and its listeners, replaced without dropping a
connection.

:class:`LiveConfig` owns everything a loaded config runs: the built servers
(:mod:`caddytw.server.build`), the :class:`~caddytw.tls.runtime.TLSRuntime` made from
their automatic-HTTPS plan, and the listeners (opened, re-pointed and closed by
:mod:`caddytw.server.listeners`). ``LiveConfig.load`` builds a new config completely
before anything changes (a bad config raises :class:`ConfigErrors` and the running one
stays). Then:

- a TLS runtime whose settings changed is replaced (certificates are loaded from
  storage again; unchanged settings keep the running one);
- a listening port whose address is in both configs stays open; its factory is
  swapped, so new connections get the new routes, and its live connections are
  adopted by the new site (their next request uses the new routes; a request in
  flight finishes on the old ones; WebSocket tunnels and event streams stay open);
- addresses new in this config are opened (if one cannot be, the new ones are closed
  again and the old config keeps running);
- background services of the new servers start, the old ones stop;
- ports whose address went away stop accepting and their connections are drained.

``BuildContext.shared`` is one dict kept across loads, so state keyed by an upstream
address (health, fail counts) carries over to the rebuilt handlers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger

from caddytw.config.errors import ConfigError, ConfigErrors
from caddytw.config.listen import ListenAddress
from caddytw.config.model import Config
from caddytw.http.site import CaddySite
from caddytw.server.build import BuiltApp, BuiltServer, build_app
from caddytw.server.listeners import Listener, open_listener, point, stop_listening
from caddytw.tls.automation import HTTPSPlan
from caddytw.tls.challenges import ChallengeRegistry
from caddytw.tls.runtime import TLSRuntime
from caddytw.wire.drain import drain

log = Logger()

AddressKey = tuple[str, str, int]


def address_key(address: ListenAddress) -> AddressKey | None:
    """What identifies a listener across reloads (port 0 never matches: always new)."""
    if address.network in ("fd", "fdgram"):  # the same inherited socket
        return (address.network, address.host, 0)
    if not address.port:
        return None
    return (address.network, address.host, address.port)


class LiveConfig:
    """The current config JSON, its built servers, its TLS runtime and its listeners.

    Services it runs (the TLS runtime, the handlers' background services) become
    children of ``parent``, the twistd-facing service.
    """

    def __init__(self, reactor: Any, parent: MultiService) -> None:
        self.reactor = reactor
        self.parent = parent
        self.shared: dict[str, Any] = {}
        self.raw: Any = None
        self.config: Config | None = None
        self.servers: list[BuiltServer] = []
        self.listeners: list[Listener] = []
        self.running = False
        self.draining: set[Deferred[Any]] = set()
        self.on_load: list[Callable[[Config], None]] = []
        #: One for the life of the service: every TLS runtime publishes ACME challenges
        #: into it and every site without TLS answers HTTP-01 from it.
        self.challenges = ChallengeRegistry()
        self.tls: TLSRuntime | None = None
        self._tls_key: Any = None
        self._tail: Deferred[None] = succeed(None)

    # -- building --------------------------------------------------------------------

    def build(self, data: Any) -> BuiltApp:
        return build_app(
            copy.deepcopy(data), self.reactor, shared=self.shared, challenges=self.challenges
        )

    def load(self, data: Any) -> Deferred[None]:
        """Replace the running config with ``data``.

        Build errors raise :class:`ConfigErrors` at once, with nothing changed. The
        returned Deferred fires when the new config is live, or fails with ConfigErrors
        when one of its addresses cannot be opened (the old config then keeps running).
        Loads are applied one at a time, in the order they were requested.
        """
        app = self.build(data)
        raw = copy.deepcopy(data)
        done: Deferred[None] = Deferred()
        tail: Deferred[None] = Deferred()

        def apply(_: Any) -> None:
            if self.running:
                applied = maybeDeferred(self._apply, app, raw)
            else:
                applied = maybeDeferred(self._commit, app, raw)
            applied.chainDeferred(done)

        def release(result: Any) -> Any:
            tail.callback(None)
            return result

        done.addBoth(release)
        previous, self._tail = self._tail, tail
        previous.addCallback(apply)
        return done

    def _commit(self, app: BuiltApp, raw: Any) -> None:
        if not self.running:
            self._set_services(app.servers)
            self._use_tls(app.plan)
        self.raw = raw
        self.config = app.config
        self.servers = app.servers
        for callback in list(self.on_load):
            callback(app.config)

    def _use_tls(self, plan: HTTPSPlan) -> None:
        """Run ``plan``'s TLS: a new TLS runtime when its settings differ from the
        running one's (certificates are loaded from storage again), else the same."""
        key = _tls_key(plan.config)
        if self.tls is not None and key == self._tls_key:
            return
        old, self.tls = self.tls, TLSRuntime(plan, self.reactor, self.challenges)
        self._tls_key = key
        if old is not None:
            old.disownServiceParent()
        self.tls.setServiceParent(self.parent)

    def _tls_runtime(self) -> TLSRuntime:
        assert self.tls is not None, "a config is loaded before anything listens"
        return self.tls

    # -- starting, reloading, stopping ----------------------------------------------

    def start(self) -> None:
        """Open every listener of the current config (twistd's startService)."""
        self.running = True
        opened = self._open(
            [(server, address) for server in self.servers for address in server.config.listen]
        )
        self.listeners = opened

    def _open(self, wanted: list[tuple[BuiltServer, ListenAddress]]) -> list[Listener]:
        """Open ports for ``wanted``; on failure close what was opened and raise."""
        opened: list[Listener] = []
        for server, address in wanted:
            try:
                listener = open_listener(self.reactor, address, server.site, self._tls_runtime())
            except Exception as error:
                for listener in opened:
                    self._stop_port(listener)
                raise ConfigErrors(
                    [
                        ConfigError(
                            f"{server.config.path}.listen",
                            f"cannot listen on {address.display}: {error}",
                        )
                    ]
                ) from None
            if listener is not None:
                opened.append(listener)
        return opened

    def _apply(self, app: BuiltApp, raw: Any) -> Deferred[None]:
        self._use_tls(app.plan)
        servers = app.servers
        current = {address_key(lst.address): lst for lst in self.listeners}
        kept: list[tuple[Listener, BuiltServer]] = []
        wanted: list[tuple[BuiltServer, ListenAddress]] = []
        for server in servers:
            for address in server.config.listen:
                key = address_key(address)
                old = current.pop(key, None) if key is not None else None
                if old is not None:
                    kept.append((old, server))
                else:
                    wanted.append((server, address))
        removed = list(current.values())
        # A new address on the port number of a removed one (":80" replacing
        # "127.0.0.1:80") can only be bound once the old socket is closed.
        removed_numbers = {listener.number for listener in removed}
        later = [(s, a) for s, a in wanted if a.port and a.port in removed_numbers]
        opened = self._open([w for w in wanted if w not in later])  # may raise: no change
        if not later:
            self._switch(app, raw, kept, opened, removed)
            return succeed(None)
        later_numbers = {address.port for _, address in later}
        blocking = [listener for listener in removed if listener.number in later_numbers]

        def reopen(_: Any) -> None:
            try:
                more = self._open(later)
            except ConfigErrors:
                for listener in opened:
                    self._stop_port(listener)
                for listener in blocking:
                    back = open_listener(
                        self.reactor, listener.address, listener.site, self._tls_runtime()
                    )
                    if back is not None:
                        listener.port, listener.h3 = back.port, back.h3
                raise
            self._switch(app, raw, kept, opened + more, removed)

        stops = [self._stop_port(listener) for listener in blocking]
        return DeferredList(stops, consumeErrors=True).addCallback(reopen)

    def _switch(
        self,
        app: BuiltApp,
        raw: Any,
        kept: list[tuple[Listener, BuiltServer]],
        opened: list[Listener],
        removed: list[Listener],
    ) -> None:
        old_sites = {lst.site for lst in self.listeners}
        for listener, server in kept:
            self._move(listener, server)
        self._adopt_connections(old_sites, kept)
        self._set_services(app.servers)
        self._retire(removed)
        self.listeners = [listener for listener, _ in kept] + opened
        self._commit(app, raw)

    def _move(self, listener: Listener, server: BuiltServer) -> None:
        old_site = listener.site
        server.site.doStart()
        point(listener, server.site, self._tls_runtime())
        old_site.doStop()

    def _adopt_connections(
        self, old_sites: set[CaddySite], kept: list[tuple[Listener, BuiltServer]]
    ) -> None:
        """Live connections follow their port to its new site; those of removed ports stay
        with their old site, which is drained below."""
        by_port: dict[int, CaddySite] = {}
        for listener, server in kept:
            by_port[listener.number] = server.site
        for site in old_sites:
            for protocol in list(site.connections):
                transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
                if transport is None:
                    continue
                target = by_port.get(transport.getHost().port)
                if target is not None and target is not site:
                    site.connections.discard(protocol)
                    target.adopt(protocol)

    def _set_services(self, servers: list[BuiltServer]) -> None:
        """Stop the old servers' services and start the new ones'; a service both configs
        share (kept in ``BuildContext.shared``, like a sync folder's watcher) runs on."""
        wanted = [service for server in servers for service in server.context.services]
        for server in self.servers:
            for service in server.context.services:
                if service.parent is self.parent and all(service is not w for w in wanted):
                    service.disownServiceParent()
        for service in wanted:
            if service.parent is not self.parent:
                service.setServiceParent(self.parent)

    def _retire(self, removed: list[Listener]) -> None:
        grace = self.config.http.grace_period if self.config else None
        for listener in removed:
            connections = [
                protocol
                for protocol in listener.site.connections
                if _local_port(protocol) == listener.number
            ]
            self._track(self._close(listener, connections, grace))

    def _stop_port(self, listener: Listener) -> Deferred[Any]:
        """Stop accepting on ``listener`` (and on its HTTP/3 port)."""
        return stop_listening(listener)

    def _close(
        self, listener: Listener, connections: list[Any], grace: float | None
    ) -> Deferred[Any]:
        stopped = self._stop_port(listener)
        return stopped.addCallback(lambda _: drain(connections, grace, self.reactor))

    def _track(self, deferred: Deferred[Any]) -> None:
        self.draining.add(deferred)

        def forget(result: Any) -> Any:
            self.draining.discard(deferred)
            return result

        deferred.addBoth(forget)

    def stop(self) -> Deferred[Any]:
        """Stop accepting everywhere, let requests finish within the grace period, close."""
        self.running = False
        stops = [self._stop_port(listener) for listener in self.listeners]
        sites = {listener.site for listener in self.listeners}
        self.listeners = []
        grace = self.config.http.grace_period if self.config else None
        connections = [protocol for site in sites for protocol in list(site.connections)]

        def drained(_: Any) -> Deferred[Any]:
            return DeferredList([drain(connections, grace, self.reactor), *self.draining])

        return DeferredList(stops).addCallback(drained)

    def bound_ports(self, server: str | None = None) -> list[int]:
        return [
            listener.number
            for listener in self.listeners
            if server is None or listener.site.caddy_server.name == server
        ]


def _local_port(protocol: Any) -> int | None:
    transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
    if transport is None:
        return None
    return int(transport.getHost().port)


def _tls_key(config: Config) -> Any:
    """What a TLS runtime is built from, to tell whether a reload changes it."""
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
