"""Which content codings a client accepts, best first (Caddy's ``AcceptedEncodings``).

Used to pick a precompressed sidecar: q-values order the client's list, and among equal
q-values the server's ``precompressed_order`` decides; codings the server does not rank
keep the client's order. ``q=0`` means "not acceptable".
"""

from __future__ import annotations

from collections.abc import Sequence

_EPSILON = 0.00001

#: The sidecar suffix Caddy's precompressed modules look for, by coding name.
SIDECAR_SUFFIXES = {"br": ".br", "gzip": ".gz", "zstd": ".zst"}


def _q_value(params: list[str]) -> float:
    """The q-value from the first parameter, 1.0 when absent or out of range."""
    if not params:
        return 1.0
    first = params[0].strip().lower()
    if not first.startswith("q="):
        return 1.0
    try:
        value = float(first[2:])
    except ValueError:
        return 1.0
    return value if 0.0 <= value <= 1.0 else 1.0


def accepted_encodings(header: str | None, preferred_order: Sequence[str]) -> list[str]:
    """Coding names from an ``Accept-Encoding`` header, most preferred first."""
    if not header:
        return []
    ranked: list[tuple[float, int, int, str]] = []
    for position, item in enumerate(header.split(",")):
        name, *params = item.split(";")
        name = name.strip().lower()
        q = _q_value(params)
        if q < _EPSILON or not name:
            continue
        server_rank = (
            len(preferred_order) - preferred_order.index(name) if name in preferred_order else -1
        )
        ranked.append((q, server_rank, position, name))
    # Highest q first; for equal q the server's rank; otherwise the client's order.
    ranked.sort(key=lambda item: (-round(item[0] / _EPSILON), -item[1], item[2]))
    return [name for _, _, _, name in ranked]
