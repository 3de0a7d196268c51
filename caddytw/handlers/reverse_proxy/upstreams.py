"""Upstream state: per-address counters shared process-wide, and each handler's view of them.

Caddy keeps one ``Host`` per dial address for the whole process, so two handlers proxying
to the same backend see the same request count and failures, and a config reload keeps
them. :class:`HostRegistry` is that table; it lives in ``BuildContext.shared`` under
:data:`REGISTRY_KEY`. The admin API's ``GET /reverse_proxy/upstreams`` lists the hosts
of the handlers that are running (each registers with :mod:`caddytw.admin.upstreams`
when its service starts, and leaves when it stops), as Caddy lists the running
config's: a config only built (``caddytw validate``, a refused ``/load``) lists none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caddytw.admin import metrics
from caddytw.config.errors import ConfigError
from caddytw.handlers.reverse_proxy.config import parse_dial
from caddytw.http.placeholders import Template

REGISTRY_KEY = "reverse_proxy.hosts"


@dataclass
class HostState:
    """Counters for one dial address, shared by every handler that proxies to it."""

    address: str
    num_requests: int = 0
    fails: int = 0
    #: Set by active health checks; passive failures are counted in ``fails`` instead.
    active_healthy: bool = True
    users: int = 0


class HostRegistry:
    """Dial address -> :class:`HostState`, reference counted by the handlers using it."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostState] = {}

    def acquire(self, address: str) -> HostState:
        state = self.hosts.get(address)
        if state is None:
            state = self.hosts[address] = HostState(address)
        state.users += 1
        return state

    def release(self, address: str) -> None:
        state = self.hosts.get(address)
        if state is None:
            return
        state.users -= 1
        if state.users <= 0 and state.num_requests <= 0:
            del self.hosts[address]
            metrics.forget_upstream(address)


def registry_of(shared: dict[str, Any]) -> HostRegistry:
    """The process-wide registry kept in a build context's ``shared`` dict."""
    registry = shared.get(REGISTRY_KEY)
    if not isinstance(registry, HostRegistry):
        registry = shared[REGISTRY_KEY] = HostRegistry()
    return registry


def upstreams_view(registry: HostRegistry) -> list[dict[str, Any]]:
    """Caddy's ``/reverse_proxy/upstreams`` JSON: ``[{"address", "num_requests", "fails"}]``."""
    return [host_row(state) for state in registry.hosts.values()]


def host_row(state: HostState) -> dict[str, Any]:
    """One upstream as ``/reverse_proxy/upstreams`` shows it."""
    return {"address": state.address, "num_requests": state.num_requests, "fails": state.fails}


def dial_placeholders(address: str, host: str, port: int) -> dict[str, str]:
    """The placeholders naming the address a proxy attempt dials."""
    return {
        "http.reverse_proxy.upstream.address": address,
        "http.reverse_proxy.upstream.hostport": address,
        "http.reverse_proxy.upstream.host": host,
        "http.reverse_proxy.upstream.port": str(port),
    }


@dataclass
class Upstream:
    """One entry of a handler's ``upstreams``: its limits over the shared state.

    ``max_fails`` is None unless passive health checking is on.
    """

    dial: str
    host: str
    port: int
    state: HostState
    max_requests: int = 0
    max_fails: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: Set when ``dial`` has placeholders: the address is filled in per request
    #: (Caddy's ``fillDialInfo``) while the counters stay keyed by the template.
    template: Template | None = None
    #: ``unix+h2c//path``: HTTP/2 with prior knowledge on this one (Caddy's network).
    h2c: bool = False
    #: The ``{http.reverse_proxy.upstream.*}`` values of ``dial`` itself, made once.
    placeholders: dict[str, str] = field(init=False, repr=False, compare=False)
    placeholders_max: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.placeholders = dial_placeholders(self.dial, self.host, self.port)
        self.placeholders_max = str(self.max_requests)

    def dial_for(self, request: Any) -> tuple[str, str, int]:
        """``(address, host, port)`` to dial for ``request`` (port 0: a unix socket).

        Raises ``ValueError`` when the placeholders fill in no usable address."""
        if self.template is None:
            return self.dial, self.host, self.port
        address = self.template.render(request)
        try:
            host, port = parse_dial(address, "dial")
        except ConfigError as error:
            raise ValueError(f"making dial info from {self.dial!r}: {error.message}") from None
        if not host:  # still braces after filling in: not an address
            raise ValueError(f"making dial info from {self.dial!r}: got {address!r}")
        return address, host, port

    @property
    def num_requests(self) -> int:
        return self.state.num_requests

    def healthy(self) -> bool:
        if not self.state.active_healthy:
            return False
        return self.max_fails is None or self.state.fails < self.max_fails

    def full(self) -> bool:
        return self.max_requests > 0 and self.state.num_requests >= self.max_requests

    def available(self) -> bool:
        """Eligible for selection: healthy and below ``max_requests`` (both in one
        call: every policy asks this of every upstream for every request)."""
        state = self.state
        return (
            state.active_healthy
            and (self.max_fails is None or state.fails < self.max_fails)
            and (self.max_requests <= 0 or state.num_requests < self.max_requests)
        )
