"""Where ``GET /reverse_proxy/upstreams`` gets its rows: providers registered by the proxy.

Each running ``reverse_proxy`` handler registers a callable returning ``[{"address",
"num_requests", "fails"}, ...]`` for its upstreams when its service starts and
unregisters it when it stops, so the list is the running config's (as Caddy's), never
that of a config only built. Handlers sharing an address share its counters: the
address is listed once. A registry keeps the admin API independent of whether the
proxy is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Provider = Callable[[], list[dict[str, Any]]]

_providers: list[Provider] = []


def register(provider: Provider) -> None:
    """Add a source of upstream rows (idempotent)."""
    if provider not in _providers:
        _providers.append(provider)


def unregister(provider: Provider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def snapshot() -> list[dict[str, Any]]:
    """Every registered upstream's state, sorted by address like a stable listing."""
    rows: dict[str, dict[str, Any]] = {}
    for provider in list(_providers):
        for row in provider():
            rows.setdefault(str(row.get("address", "")), row)
    return [rows[address] for address in sorted(rows)]
