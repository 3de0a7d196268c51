"""Validators and conditional requests (RFC 9110 section 13), as pure functions.

The ETag is Caddy's: base-36 modification time (Unix seconds) followed by base-36 size,
quoted. The evaluation order of the precondition headers is RFC 9110 section 13.2.2,
which is also what Go's ``ServeContent`` (under Caddy) implements.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from caddytw.http.dates import parse_http_date

_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_OWS = " \t\r\n"


def base36(value: int) -> str:
    """Go's ``strconv.FormatInt(value, 36)``."""
    if value < 0:
        return "-" + base36(-value)
    digits = []
    while True:
        value, digit = divmod(value, 36)
        digits.append(_DIGITS36[digit])
        if not value:
            return "".join(reversed(digits))


@lru_cache(maxsize=1024)
def make_etag(mtime: int, size: int) -> str:
    """Caddy's strong ETag for a file: ``"<mtime base36><size base36>"``."""
    return f'"{base36(mtime)}{base36(size)}"'


def scan_etag(text: str) -> tuple[str, str]:
    """Split the first entity-tag off a list: ``(etag, rest)``, or ``("", "")`` when
    ``text`` does not start with a well-formed ``"..."`` or ``W/"..."``."""
    text = text.strip(_OWS)
    start = 2 if text.startswith("W/") else 0
    if len(text) - start < 2 or text[start] != '"':
        return "", ""
    for index in range(start + 1, len(text)):
        char = ord(text[index])
        if char == 0x22:
            return text[: index + 1], text[index + 1 :]
        if not (char == 0x21 or 0x23 <= char <= 0x7E or char >= 0x80):
            return "", ""
    return "", ""


def strong_match(a: str, b: str) -> bool:
    return a == b and a != "" and a[0] == '"'


def weak_match(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


class Verdict(enum.Enum):
    """What a conditional request turns into."""

    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"  # 304
    PRECONDITION_FAILED = "precondition_failed"  # 412


@dataclass(frozen=True)
class Conditions:
    """The conditional request headers (all occurrences of a header joined with ``,``)."""

    if_match: str | None = None
    if_unmodified_since: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_range: str | None = None


def _list_matches(header: str, etag: str, match: Callable[[str, str], bool]) -> bool:
    """Walk an entity-tag list: True on ``*`` or a match; False when none matched or the
    list stops parsing (Go stops at the first malformed element too)."""
    rest = header
    while True:
        rest = rest.strip(_OWS)
        if not rest:
            return False
        if rest[0] == ",":
            rest = rest[1:]
            continue
        if rest[0] == "*":
            return True
        tag, rest = scan_etag(rest)
        if not tag:
            return False
        if match(tag, etag):
            return True


def _modified_after(mtime: int, header: str) -> bool | None:
    """Whether the file changed after the header's date (None: no usable date)."""
    when = parse_http_date(header)
    return None if when is None else mtime > when


def evaluate(method: str, conditions: Conditions, etag: str, mtime: int | None) -> Verdict:
    """RFC 9110 13.2.2: If-Match, else If-Unmodified-Since; then If-None-Match, else
    If-Modified-Since (GET/HEAD only). ``mtime`` is None when the file has no usable
    modification time (Go's zero time or the Unix epoch)."""
    passed: bool | None = None
    if conditions.if_match:
        passed = _list_matches(conditions.if_match, etag, strong_match)
    elif conditions.if_unmodified_since and mtime is not None:
        changed = _modified_after(mtime, conditions.if_unmodified_since)
        passed = None if changed is None else not changed
    if passed is False:
        return Verdict.PRECONDITION_FAILED
    safe = method in ("GET", "HEAD")
    if conditions.if_none_match:
        if _list_matches(conditions.if_none_match, etag, weak_match):
            return Verdict.NOT_MODIFIED if safe else Verdict.PRECONDITION_FAILED
        return Verdict.PROCEED
    if (
        safe
        and conditions.if_modified_since
        and mtime is not None
        and _modified_after(mtime, conditions.if_modified_since) is False
    ):
        return Verdict.NOT_MODIFIED
    return Verdict.PROCEED


def range_allowed(method: str, if_range: str | None, etag: str, mtime: int | None) -> bool:
    """Whether a Range header may be honoured given If-Range (RFC 9110 13.1.5): the
    entity-tag must match strongly, or the date must equal Last-Modified exactly."""
    if method not in ("GET", "HEAD") or not if_range:
        return True
    tag, _ = scan_etag(if_range)
    if tag:
        return strong_match(tag, etag)
    if mtime is None:
        return False
    return parse_http_date(if_range) == mtime
