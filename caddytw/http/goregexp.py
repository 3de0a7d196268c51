"""Go's ``regexp`` replacement semantics on Python's ``re``.

Caddy configs write replacement templates the Go way (``$1``, ``${name}``, ``$$``) and
rely on ``ReplaceAllString``'s rules for empty matches; Python's ``re.sub`` spells
templates differently (``\\1``) and treats empty matches differently. These functions
give Caddy's results so ``rewrite``, ``headers`` and ``map`` agree with Caddy.
"""

from __future__ import annotations

import re

from caddytw.config.errors import ConfigError
from caddytw.http.matchers import go_regex

_NAME_CHAR = re.compile(r"\w")  # letters, digits and underscore, as Go


def compile_go(pattern: str, path: str) -> re.Pattern[str]:
    """Compile an RE2-style pattern or raise a :class:`ConfigError` at ``path``."""
    try:
        return re.compile(go_regex(pattern))
    except re.error as exc:
        raise ConfigError(path, f"invalid regexp {pattern!r}: {exc}") from None


def _extract(text: str) -> tuple[str, str] | None:
    """Parse ``name`` or ``{name}`` after a ``$``: ``(name, rest)`` or None if malformed."""
    brace = text.startswith("{")
    body = text[1:] if brace else text
    end = 0
    while end < len(body) and _NAME_CHAR.match(body[end]):
        end += 1
    if end == 0:
        return None
    name = body[:end]
    if brace:
        if end >= len(body) or body[end] != "}":
            return None
        end += 1
    return name, body[end:]


def _group(match: re.Match[str], name: str) -> str:
    """A submatch by number (no leading zeros) or by name; empty when absent."""
    if name.isdigit() and name.isascii():
        if len(name) > 1 and name[0] == "0":
            return ""
        number = int(name)
        if number > (match.re.groups or 0):
            return ""
        return match.group(number) or ""
    if name in match.re.groupindex:
        return match.group(name) or ""
    return ""


def expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``/``${1}``/``$name``/``${name}``, ``$$`` is ``$``.

    As in Go, ``$name`` takes the longest run of name characters (``$1x`` is ``${1x}``),
    and a malformed reference is kept as written.
    """
    out: list[str] = []
    rest = template
    while True:
        before, dollar, after = rest.partition("$")
        out.append(before)
        if not dollar:
            break
        if after.startswith("$"):
            out.append("$")
            rest = after[1:]
            continue
        parsed = _extract(after)
        if parsed is None:
            out.append("$")
            rest = after
            continue
        name, rest = parsed
        out.append(_group(match, name))
    return "".join(out)


def replace_all(regex: re.Pattern[str], text: str, template: str) -> str:
    """Go's ``Regexp.ReplaceAllString``: every match replaced by ``expand(template)``.

    An empty match right after the previous match is not replaced, and the search always
    advances past an empty match, exactly as Go does (Python's ``re.sub`` differs).
    """
    out: list[str] = []
    last_end = 0
    position = 0
    length = len(text)
    while position <= length:
        match = regex.search(text, position)
        if match is None:
            break
        start, end = match.span()
        out.append(text[last_end:start])
        if end > last_end or start == 0:
            out.append(expand(template, match))
        last_end = end
        position = max(end, position + 1)
    out.append(text[last_end:])
    return "".join(out)
