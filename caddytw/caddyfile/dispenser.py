"""Cursor over tokens with Caddy's line-aware navigation (``dispenser.go``).

Directive parsers walk their segment with ``next``/``next_arg``/
``next_block`` exactly like Caddy's Go code does; keeping the same semantics
is what makes edge cases (blocks opened on the same line, ``{}``, nested
blocks) behave identically.
"""

from __future__ import annotations

from typing import NoReturn

from .errors import CaddyfileError
from .lexer import Token

__all__ = ["Dispenser"]


class Dispenser:
    """A cursor over a token list; ``cursor == -1`` means "before the first"."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.cursor = -1
        self.nesting = 0

    # -- movement -----------------------------------------------------------
    def next(self) -> bool:
        if self.cursor < len(self.tokens) - 1:
            self.cursor += 1
            return True
        return False

    def prev(self) -> bool:
        if self.cursor > -1:
            self.cursor -= 1
            return self.cursor > -1
        return False

    def _line_breaks(self, idx: int) -> int:
        if 0 <= idx < len(self.tokens):
            return self.tokens[idx].text.count("\n")
        return 0

    def _next_on_same_line(self) -> bool:
        return self._advance(to_next_line=False)

    def _advance(self, *, to_next_line: bool) -> bool:
        """Go's ``Dispenser.Next*``: the first call steps onto the first token; later ones
        step only when the next token starts a new line (``to_next_line``) or stays on
        the current one."""
        if self.cursor < 0:
            self.cursor += 1
            return True
        if self.cursor >= len(self.tokens) - 1:
            return False
        cur, nxt = self.tokens[self.cursor], self.tokens[self.cursor + 1]
        ends_at = cur.line + self._line_breaks(self.cursor)
        if to_next_line:
            step = cur.file != nxt.file or ends_at < nxt.line
        else:
            step = cur.file == nxt.file and ends_at == nxt.line
        if step:
            self.cursor += 1
        return step

    def next_arg(self) -> bool:
        """Advance to the next token on the same line, unless it opens a block."""
        if not self._next_on_same_line():
            return False
        if self.val == "{":
            self.cursor -= 1
            return False
        return True

    def next_line(self) -> bool:
        return self._advance(to_next_line=True)

    def next_block(self, initial_nesting: int) -> bool:
        """Advance inside a ``{ ... }`` block; False when it ends (or is absent)."""
        if self.nesting > initial_nesting:
            if not self.next():
                return False
            if self.val == "}" and not self._next_on_same_line():
                self.nesting -= 1
            elif self.val == "{" and not self._next_on_same_line():
                self.nesting += 1
            return self.nesting > initial_nesting
        if not self._next_on_same_line():
            return False
        if self.val != "{":
            self.cursor -= 1
            return False
        self.next()
        if self.val == "}":
            return False
        self.nesting += 1
        return True

    def reset(self) -> None:
        self.cursor = -1
        self.nesting = 0

    def delete(self) -> None:
        if 0 <= self.cursor < len(self.tokens):
            del self.tokens[self.cursor]
            self.cursor -= 1

    # -- inspection ---------------------------------------------------------
    @property
    def val(self) -> str:
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].text
        return ""

    def token(self) -> Token:
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor]
        return Token("", 0, "")

    @property
    def line(self) -> int:
        return self.token().line

    @property
    def file(self) -> str:
        return self.token().file

    def scalar_val(self) -> object:
        """The token as int/float/bool unless quoted (Caddy's ``ScalarVal``)."""
        tok = self.token()
        if tok.quoted:
            return tok.text
        return scalar(tok.text)

    def val_raw(self) -> str:
        tok = self.token()
        return tok.quote + tok.text + tok.quote

    def args(self, count: int) -> list[str] | None:
        """Exactly the next ``count`` args on this line, or None if fewer."""
        out: list[str] = []
        for _ in range(count):
            if not self.next_arg():
                return None
            out.append(self.val)
        return out

    def all_args(self, count: int) -> list[str] | None:
        """The next ``count`` args and nothing more on this line."""
        out = self.args(count)
        if out is None:
            return None
        if self.next_arg():
            self.prev()
            return None
        return out

    def remaining_args(self) -> list[str]:
        out: list[str] = []
        while self.next_arg():
            out.append(self.val)
        return out

    def count_remaining_args(self) -> int:
        count = 0
        while self.next_arg():
            count += 1
        for _ in range(count):
            self.prev()
        return count

    def next_segment(self) -> list[Token]:
        """The current directive line plus its block, tokens as-is."""
        tokens = [self.token()]
        while self.next_arg():
            tokens.append(self.token())
        opened = False
        nesting = self.nesting
        while self.next_block(nesting):
            if not opened:
                self.prev()
                tokens.append(self.token())
                self.next()
                opened = True
            tokens.append(self.token())
        if opened:
            tokens.append(self.token())
        return tokens

    def is_new_line(self) -> bool:
        if self.cursor < 1:
            return True
        if self.cursor > len(self.tokens) - 1:
            return False
        prev, cur = self.tokens[self.cursor - 1], self.tokens[self.cursor]
        if prev.file != cur.file:
            return True
        return prev.line + self._line_breaks(self.cursor - 1) < cur.line

    def is_next_on_new_line(self) -> bool:
        if self.cursor < 0:
            return False
        if self.cursor >= len(self.tokens) - 1:
            return True
        cur, nxt = self.tokens[self.cursor], self.tokens[self.cursor + 1]
        if cur.file != nxt.file:
            return True
        return cur.line + self._line_breaks(self.cursor) < nxt.line

    # -- errors -------------------------------------------------------------
    def err(self, message: str) -> CaddyfileError:
        return CaddyfileError(self.file or "Caddyfile", self.line, message)

    def fail(self, message: str) -> NoReturn:
        raise self.err(message)

    def arg_err(self) -> CaddyfileError:
        if self.val == "{":
            return self.err("Unexpected token '{', expecting argument")
        return self.err(f"Wrong argument count or unexpected line ending after '{self.val}'")

    def syntax_err(self, expected: str) -> CaddyfileError:
        return self.err(f"Syntax error: Unexpected token '{self.val}', expecting '{expected}'")

    def eof_err(self) -> CaddyfileError:
        return self.err("Unexpected EOF")


def scalar(text: str) -> object:
    """Go's Atoi / ParseFloat / ParseBool cascade used for untyped values."""
    try:
        if text.lstrip("+-").isdigit():
            return int(text)
    except ValueError:
        pass
    try:
        if text.lower() not in ("inf", "+inf", "-inf", "infinity", "nan") and text.strip() == text:
            return float(text)
    except ValueError:
        pass
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return text
