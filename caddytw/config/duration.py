"""Durations as Caddy accepts them: Go duration strings, a ``d`` unit, or integer nanoseconds."""

from __future__ import annotations

import re

from caddytw.config.errors import ConfigError

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration(value: object, path: str) -> float:
    """Return seconds for a Caddy duration (``"1m30s"``, ``"1.5h"``, ``"-1"``, ``10000000``).

    Integers are nanoseconds, as Go's ``time.Duration`` marshals them.
    """
    if isinstance(value, bool):
        raise ConfigError(path, f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1e9
    if not isinstance(value, str):
        raise ConfigError(path, f"invalid duration {value!r}: expected a string or integer")
    text = value.strip()
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if text.isdigit():
        return sign * int(text) / 1e9
    position = 0
    total = 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ConfigError(path, f"invalid duration {value!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text:
        raise ConfigError(path, f"invalid duration {value!r}")
    return sign * total
