"""Go's ``net/url`` and ``path`` rules, as Caddy applies them to request URIs.

Rewrites must produce the same URI Caddy would, byte for byte: which characters a path
keeps literal, how a query is parsed and re-encoded (sorted keys, ``+`` for spaces),
and how ``path.Clean`` treats dots and slashes. Paths handled here are ``str``: escaped
forms are ASCII (or latin-1 for raw bytes a client sent), decoded forms are UTF-8 text
with undecodable bytes kept as surrogate escapes (see ``caddytw.http.request.decode_path``).
"""

from __future__ import annotations

import posixpath
import string
from urllib.parse import quote_plus

_PATH_SAFE = frozenset((string.ascii_letters + string.digits + "-_.~$&+,/:;=@").encode())
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def escape_path(path: str) -> str:
    """Go's ``escape(path, encodePath)``: what ``URL.EscapedPath`` gives for a plain path."""
    out = []
    for byte in _to_bytes(path):
        out.append(chr(byte) if byte in _PATH_SAFE else f"%{byte:02X}")
    return "".join(out)


def escape_path_keep_slashes(path: str) -> str:
    """Go's ``url.PathEscape`` with ``/`` kept (Caddy's ``escapePathPreservingSlashes``)."""
    out = []
    for byte in _to_bytes(path):
        keep = byte in _PATH_SAFE and byte not in b";,"
        out.append(chr(byte) if keep else f"%{byte:02X}")
    return "".join(out)


def _unescape(text: str, plus_is_space: bool) -> str | None:
    """Percent-decoding as Go's ``unescape``: None on a malformed ``%`` sequence."""
    data = _to_bytes(text)
    if b"%" not in data and not (plus_is_space and b"+" in data):
        return text
    out = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == 0x25:  # %
            pair = data[index + 1 : index + 3]
            if len(pair) < 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                return None
            out.append(int(pair, 16))
            index += 3
            continue
        out.append(0x20 if plus_is_space and byte == 0x2B else byte)
        index += 1
    return _from_bytes(bytes(out))


def unescape_path(text: str) -> str | None:
    """Go's ``url.PathUnescape`` (None when the escapes are malformed)."""
    return _unescape(text, plus_is_space=False)


def query_escape(text: str) -> str:
    """Go's ``url.QueryEscape``: only unreserved bytes stay, space becomes ``+``."""
    return quote_plus(_to_bytes(text), safe="")


def query_unescape(text: str) -> str | None:
    """Go's ``url.QueryUnescape`` (None when malformed)."""
    return _unescape(text, plus_is_space=True)


def parse_query(raw: str) -> dict[str, list[str]]:
    """Go's ``url.ParseQuery``, keeping key order: malformed pairs and keys with ``;``
    are dropped, as Go drops them (it reports an error that Caddy ignores)."""
    values: dict[str, list[str]] = {}
    for part in raw.split("&"):
        if not part or ";" in part:
            continue
        key, _, value = part.partition("=")
        key_text, value_text = query_unescape(key), query_unescape(value)
        if key_text is None or value_text is None:
            continue
        values.setdefault(key_text, []).append(value_text)
    return values


def encode_query(values: dict[str, list[str]]) -> str:
    """Go's ``url.Values.Encode``: keys sorted (bytewise), values in order."""
    parts: list[str] = []
    for key in sorted(values, key=_to_bytes):
        escaped = query_escape(key)
        parts.extend(f"{escaped}={query_escape(value)}" for value in values[key])
    return "&".join(parts)


def go_clean(path: str) -> str:
    """Go's ``path.Clean``: lexical, ``""`` -> ``"."``, never a trailing slash."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = ("/" if rooted else "") + "/".join(parts)
    return cleaned or ("/" if rooted else ".")


_SLASH_MARK = "\uffff"  # cannot occur in a URI path: stands between doubled slashes


def caddy_clean_path(path: str, merge_slashes: bool = True) -> str:
    """Caddy's ``CleanPath``: ``path.Clean`` keeping a trailing slash, and optionally
    keeping ``//`` runs (when a rewrite pattern itself contains ``//``)."""
    if not merge_slashes:
        marked = []
        for index, char in enumerate(path):
            if char == "/" and index > 0 and path[index - 1] == "/":
                marked.append(_SLASH_MARK)
            marked.append(char)
        return caddy_clean_path("".join(marked)).replace(_SLASH_MARK, "")
    # On a rooted path, posixpath.normpath (in C) is Go's path.Clean but for keeping a
    # leading "//", which lstrip drops: this is the hot path of every path matcher.
    rooted = path.startswith("/")
    cleaned = "/" + posixpath.normpath(path).lstrip("/") if rooted else go_clean(path)
    if cleaned != "/" and path.endswith("/"):
        cleaned += "/"
    return cleaned
