"""The ``hide`` list: files the server acts as if it did not have.

Semantics are Caddy's ``fileHidden``: a pattern without a ``/`` is matched (as a glob)
against every component of the absolute file name, so ``.git`` hides ``/srv/.git/config``;
a pattern with a ``/`` is made absolute and hides that path and everything below it, or
matches the whole absolute name as a glob. Globs are Go's ``filepath.Match``: ``*`` and
``?`` never cross a ``/``, ``[^...]`` negates, ``\\`` escapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=512)
def go_glob(pattern: str) -> re.Pattern[str] | None:
    """A compiled regex for a Go ``filepath.Match`` pattern (None if the pattern is bad,
    which Go reports as an error and Caddy treats as "not hidden")."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            index += 1
            if index >= len(pattern):
                return None
            out.append(re.escape(pattern[index]))
        elif char == "[":
            end, cls = _char_class(pattern, index + 1)
            if cls is None:
                return None
            out.append(cls)
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out), re.DOTALL)


def _class_char(pattern: str, index: int) -> tuple[int, str | None]:
    """One (possibly escaped) class character; an unescaped ``-`` or ``]`` is an error."""
    char = pattern[index]
    if char in "-]":
        return index, None
    if char == "\\":
        index += 1
        if index >= len(pattern):
            return index, None
        char = pattern[index]
    return index, char


def _char_class(pattern: str, index: int) -> tuple[int, str | None]:
    """Translate ``[...]`` starting after the ``[``; returns (index of ``]``, regex)."""
    negate = index < len(pattern) and pattern[index] == "^"
    if negate:
        index += 1
    items: list[str] = []
    while index < len(pattern):
        if pattern[index] == "]" and items:
            return index, ("[^" if negate else "[") + "".join(items) + "]"
        index, low = _class_char(pattern, index)
        if low is None:
            return index, None
        item = re.escape(low)
        if index + 1 < len(pattern) and pattern[index + 1] == "-":
            if index + 2 >= len(pattern):
                return index, None
            index, high = _class_char(pattern, index + 2)
            if high is None or high < low:
                return index, None
            item += "-" + re.escape(high)
        items.append(item)
        index += 1
    return index, None


def glob_match(pattern: str, name: str) -> bool:
    regex = go_glob(pattern)
    return regex is not None and regex.fullmatch(name) is not None


def prepare(patterns: Sequence[str]) -> tuple[str, ...]:
    """Patterns as Caddy compares them: those naming a path become absolute."""
    return tuple(os.path.abspath(p) if "/" in p else p for p in patterns if p)


def is_hidden(filename: str, patterns: Sequence[str]) -> bool:
    """Whether ``filename`` is hidden by any of the (prepared) ``patterns``."""
    if not patterns:
        return False
    absolute = os.path.abspath(filename)
    components: list[str] | None = None
    for pattern in patterns:
        if "/" not in pattern:
            if components is None:
                components = absolute.split("/")
            if any(glob_match(pattern, component) for component in components):
                return True
        elif absolute.startswith(pattern) and absolute[len(pattern) :].startswith("/"):
            return True
        if glob_match(pattern, absolute):
            return True
    return False
