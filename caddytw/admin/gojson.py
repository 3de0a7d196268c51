"""JSON encoded the way Caddy's Go encoder writes it, so ETags match Caddy's byte for byte.

Caddy hashes the exact bytes ``json.Encoder.Encode`` produces: object keys sorted,
no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, integral floats without
a fraction, and a trailing newline. The ETag is ``"<path> <fnv-1a 32 hex>"``.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _go_float(value: float) -> str:
    """Go's encoding/json float: shortest digits, fixed notation unless tiny or huge."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError("JSON cannot encode NaN or infinity")
    magnitude = abs(value)
    shortest = repr(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = f"{value:e}".partition("e")
        if "e" in shortest:
            mantissa, _, exponent = shortest.partition("e")
        else:  # repr chose fixed notation; re-express its digits in Go's 'e' form
            mantissa, _, exponent = f"{Decimal(shortest):e}".partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").lstrip("0") or "0"
        if sign == "+" and len(digits) < 2:
            digits = "0" + digits
        return f"{mantissa}e{sign}{digits}"
    text = format(Decimal(shortest), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_go_float(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"not JSON data: {type(value).__name__}")


def encode(value: Any) -> bytes:
    """``value`` as Caddy's admin API writes it (with the trailing newline)."""
    out: list[str] = []
    _encode(value, out)
    text = "".join(out)
    for raw, escaped in _HTML_ESCAPES.items():
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode("utf-8") + b"\n"


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a, Go's ``hash/fnv.New32a`` (the hash behind Caddy's config ETags)."""
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def etag(path: str, body: bytes) -> str:
    """Caddy's ETag for the config at ``path`` whose encoding is ``body``."""
    return f'"{path} {fnv1a32(body):08x}"'
