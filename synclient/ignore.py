"""Selective sync: gitignore-style patterns from ``.syncignore`` and ``--exclude``.

Supported, as in gitignore: ``#`` comments, blank lines, ``!`` to re-include, a trailing
``/`` for directories only, a leading or inner ``/`` to anchor at the root (otherwise a
pattern matches a name at any depth), ``*`` and ``?`` within one segment, ``[...]``
classes, and ``**`` across segments. The last matching pattern wins; a path inside an
ignored directory is ignored too (it is never even scanned).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".syncignore"


@dataclass(frozen=True, slots=True)
class Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    text: str


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end + 1
        elif ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def compile_rule(line: str) -> Rule | None:
    """One gitignore line, or ``None`` for a blank line or comment."""
    text = line.rstrip("\n").rstrip("\r")
    if not text.strip() or text.startswith("#"):
        return None
    stripped = text.rstrip(" ")
    negate = stripped.startswith("!")
    if negate:
        stripped = stripped[1:]
    dir_only = stripped.endswith("/")
    stripped = stripped.rstrip("/")
    if not stripped:
        return None
    anchored = "/" in stripped
    stripped = stripped.lstrip("/")
    body = _translate(stripped)
    prefix = "" if anchored else "(?:.*/)?"
    return Rule(re.compile(f"{prefix}{body}"), negate, dir_only, text)


class IgnoreRules:
    """An ordered list of rules; :meth:`ignored` answers for one relative path."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self.rules = [rule for rule in map(compile_rule, lines) if rule is not None]

    @classmethod
    def load(cls, root: Path, extra: Iterable[str] = ()) -> IgnoreRules:
        """Rules from ``root/.syncignore`` (if any) followed by ``extra`` patterns."""
        lines: list[str] = []
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            lines = (root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
        return cls([*lines, *extra])

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` itself matches (callers stop descending into ignored folders;
        :meth:`covers` also checks the parents)."""
        verdict = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.fullmatch(path):
                verdict = not rule.negate
        return verdict

    def covers(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` or any folder above it is ignored."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if self.ignored("/".join(parts[:depth]), True):
                return True
        return self.ignored(path, is_dir)

    def __bool__(self) -> bool:
        return bool(self.rules)
