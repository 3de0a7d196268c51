"""Where ``GET /reverse_proxy/upstreams`` gets its rows: providers registered by the proxy.

The reverse proxy registers a callable returning ``[{"address", "num_requests",
"fails"}, ...]`` for the upstreams it knows; the admin API concatenates them. A
registry keeps the admin API independent of whether the proxy is installed.
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
    rows: list[dict[str, Any]] = []
    for provider in list(_providers):
        rows.extend(provider())
    return sorted(rows, key=lambda row: str(row.get("address", "")))
