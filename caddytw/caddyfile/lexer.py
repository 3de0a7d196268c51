"""Caddyfile tokenizer: the exact lexical rules of Caddy's ``lexer.go``.

Tokens are separated by whitespace; ``"..."`` and backquoted strings keep
whitespace; a backslash escapes a quote inside double quotes (other escapes
are kept verbatim) and a backslash before a newline continues the line; ``#``
at the start of a token starts a comment.  Environment placeholders
``{$VAR}`` / ``{$VAR:default}`` are substituted in the raw text before
tokenizing, as Caddy does, so they may expand to several tokens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["Token", "all_tokens", "quote", "replace_env_vars", "tokenize"]


@dataclass(frozen=True)
class Token:
    """One token: its text, where it came from, and how it was quoted."""

    file: str
    line: int
    text: str
    quote: str = ""  # '"' or '`' when the token was quoted
    snippet: str = ""  # name of the snippet the token was defined in, if any

    @property
    def quoted(self) -> bool:
        return bool(self.quote)

    def with_text(self, text: str) -> Token:
        return replace(self, text=text)


def replace_env_vars(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Substitute ``{$NAME}`` and ``{$NAME:default}`` like Caddy's parser.

    Unset variables without a default become the empty string; the result
    of a substitution is never scanned again.
    """
    env = os.environ if environ is None else environ
    offset = 0
    while True:
        begin = text.find("{$", offset)
        if begin < 0:
            return text
        end = text.find("}", begin + 2)
        if end < 0:
            return text
        body = text[begin + 2 : end]
        if not body:
            offset = end + 1
            continue
        name, sep, default = body.partition(":")
        value = env.get(name)
        if value is None:
            value = default if sep else ""
        text = text[:begin] + value + text[end + 1 :]
        offset = begin + len(value)


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` (Python also counts the ASCII separators)."""
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def tokenize(text: str, filename: str) -> list[Token]:
    """Split already env-substituted text into tokens (Caddy's ``Tokenize``)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    tokens: list[Token] = []
    line = 1
    skipped = 0
    val: list[str] = []
    tok_line = 1
    comment = quoted = btquoted = escaped = False
    i = 0
    n = len(text)

    def emit(quote: str) -> None:
        tokens.append(Token(filename, tok_line, "".join(val), quote))

    while i < n:
        ch = text[i]
        i += 1
        if not escaped and not btquoted and ch == "\\":
            escaped = True
            continue
        if quoted or btquoted:
            if quoted and escaped:
                if ch != '"':
                    val.append("\\")
                escaped = False
            elif (quoted and ch == '"') or (btquoted and ch == "`"):
                emit(ch)
                val = []
                quoted = btquoted = False
                continue
            if ch == "\n":
                line += 1 + skipped
                skipped = 0
            val.append(ch)
            continue
        if is_space(ch):
            if ch == "\r":
                continue
            if ch == "\n":
                if escaped:
                    skipped += 1
                    escaped = False
                else:
                    line += 1 + skipped
                    skipped = 0
                comment = False
            if val:
                emit("")
                val = []
                # Caddy's lexer returns here, which drops any pending escape.
                escaped = False
            continue
        if ch == "#" and not val:
            comment = True
        if comment:
            continue
        if not val:
            tok_line = line
            if ch == '"':
                quoted = True
                continue
            if ch == "`":
                btquoted = True
                continue
        if escaped:
            val.append("\\")
            escaped = False
        val.append(ch)
    if val:
        emit("")
    return tokens


def all_tokens(text: str, filename: str, environ: Mapping[str, str] | None = None) -> list[Token]:
    """Env substitution then tokenizing: what Caddy does for every file read."""
    return tokenize(replace_env_vars(text, environ), filename)


def quote(text: str) -> str:
    """Render ``text`` as one Caddyfile token that lexes back to ``text``."""
    if text and not any(is_space(c) or c in '"`\\{}#' for c in text):
        return text
    if "`" not in text:
        return "`" + text + "`"
    if "\\" in text:
        raise ValueError("a token with both a backquote and a backslash has no Caddyfile spelling")
    return '"' + text.replace('"', '\\"') + '"'
