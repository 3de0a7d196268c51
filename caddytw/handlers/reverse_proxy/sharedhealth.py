"""Upstream health shared between worker processes (through :mod:`caddytw.admin.peers`).

Each worker counts passive failures and runs active probes itself; without sharing,
an upstream that one worker found dead keeps getting each other worker's requests
until that worker has seen ``max_fails`` failures of its own. So:

- a passive failure is published while the upstream is still below ``max_fails``
  (once it is down everywhere, further failures change nothing and are not sent,
  which bounds the messages); the other workers count it too, for the same
  ``fail_duration``: the failures of all workers add up, as in one Caddy process;
- an active check that flips an upstream's health is published, and the other
  workers take the new state at once (their own probes keep running and correct it
  at their next round if they see otherwise).

Both are safe when a worker dies or a message is lost: shared failures expire on
their own, and active state is refreshed by every worker's probes.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from caddytw.admin import metrics, peers
from caddytw.handlers.reverse_proxy.upstreams import HostRegistry, HostState, Upstream

TOPIC = "upstream"
LISTENER_KEY = "reverse_proxy.shared_health"
#: The longest a failure from another worker is counted (a bad message cannot pin an
#: upstream down for longer).
MAX_FAIL_DURATION = 24 * 3600.0


def failure_counted(upstream: Upstream, before: int, fail_duration: float) -> None:
    """This worker just counted a passive failure against ``upstream`` (it had ``before``
    failures): tell the others if it could still change their view of it."""
    if upstream.max_fails is not None and before < upstream.max_fails:
        peers.publish(TOPIC, {"address": upstream.dial, "failed_for": fail_duration})


def active_changed(upstream: Upstream, healthy: bool) -> None:
    """This worker's active checks just flipped ``upstream``'s health."""
    peers.publish(TOPIC, {"address": upstream.dial, "healthy": healthy})


class SharedHealth:
    """Applies the other workers' upstream messages to this process's host table."""

    def __init__(self, registry: HostRegistry, reactor: Any) -> None:
        self.registry = registry
        self.reactor = reactor
        peers.subscribe(TOPIC, self.receive)

    def receive(self, message: dict[str, Any]) -> None:
        address = message.get("address")
        state = self.registry.hosts.get(address) if isinstance(address, str) else None
        if state is None:
            return  # not an upstream of this process's config
        duration = message.get("failed_for")
        if _positive_number(duration):
            self._count_failure(state, min(float(duration), MAX_FAIL_DURATION))
        healthy = message.get("healthy")
        if isinstance(healthy, bool):
            state.active_healthy = healthy
            metrics.set_upstream_healthy(state.address, healthy)

    def _count_failure(self, state: HostState, duration: float) -> None:
        state.fails += 1

        def forget() -> None:
            state.fails -= 1

        self.reactor.callLater(duration, forget)


def _positive_number(value: object) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def share_health(shared: dict[str, Any], registry: HostRegistry, reactor: Any) -> None:
    """Listen to the other workers for ``registry`` (once per shared build context)."""
    listener = shared.get(LISTENER_KEY)
    if not isinstance(listener, SharedHealth) or listener.registry is not registry:
        shared[LISTENER_KEY] = SharedHealth(registry, reactor)
