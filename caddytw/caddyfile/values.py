"""Value parsers shared by directives: Go durations, byte sizes, weak strings.

Caddy marshals ``caddy.Duration`` as integer nanoseconds and ``WeakString``
status codes as numbers when they look like integers; mirroring those rules
is needed for the JSON to be identical.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dispenser import Dispenser

__all__ = ["atoi", "parse_bytes", "parse_duration", "size_arg", "weak_string"]

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """Caddy's ``ParseDuration``: Go durations plus ``d`` for days; ns result."""
    s = text
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART_RE.match(s, pos)
        if not m:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * round(total)


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
    "p": 1000**5,
    "pb": 1000**5,
    "pi": 1024**5,
    "pib": 1024**5,
}
_SIZE_RE = re.compile(r"^([0-9.,]*)\s*([a-zA-Z]*)$")


def parse_bytes(text: str) -> int:
    """go-humanize ``ParseBytes``: ``10MB`` = 10e6, ``10MiB`` = 10*2^20."""
    m = _SIZE_RE.match(text.strip())
    if not m or not m.group(1).replace(",", ""):
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    unit = _SIZE_UNITS.get(m.group(2).lower())
    if unit is None:
        raise ValueError(f"unhandled size name: {m.group(2).lower()}")
    return int(float(m.group(1).replace(",", "")) * unit)


def size_arg(d: Dispenser, name: str) -> int:
    """The one size argument of subdirective ``name`` (``max_size 10MB``), as Caddy's
    ``humanize.ParseBytes`` reads it; a missing or extra argument or a bad size fails."""
    args = d.all_args(1)
    if args is None:
        raise d.arg_err()
    try:
        return parse_bytes(args[0])
    except ValueError as exc:
        d.fail(f"parsing {name}: {exc}")


def atoi(text: str) -> int:
    """Go's ``strconv.Atoi``: optional sign, ASCII digits only."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def weak_string(text: str) -> int | bool | str:
    """How ``caddyhttp.WeakString`` marshals: number, bool or string."""
    if text == "true":
        return True
    if text == "false":
        return False
    try:
        return atoi(text)
    except ValueError:
        return text
