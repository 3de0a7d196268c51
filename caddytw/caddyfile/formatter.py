"""``caddy fmt`` and the "input is not formatted" warning Caddy's adapter gives.

A character-level port of Caddy 2.6.2's ``Format``: tabs for nesting, single
spaces between tokens, at most one blank line, blank line between top-level
blocks.  The warning points at the first line where input and formatted
text differ.
"""

from __future__ import annotations

from .lexer import is_space

__all__ = ["format_caddyfile", "formatting_difference"]


class _Formatter:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.last = ""
        self.beginning_of_line = True
        self.nesting = 0

    def write(self, ch: str) -> None:
        self.out.append(ch)
        self.last = ch

    def indent(self) -> None:
        for _ in range(self.nesting):
            self.write("\t")

    def next_line(self) -> None:
        self.write("\n")
        self.beginning_of_line = True

    def run(self, text: str) -> str:
        space = True
        open_brace = open_brace_written = open_brace_space = False
        new_lines = 0
        comment = quoted = escaped = False
        for ch in text.strip():
            if comment:
                if ch == "\n":
                    comment = False
                    space = True
                    self.next_line()
                else:
                    self.write(ch)
                continue
            if not escaped and ch == "\\":
                if space:
                    self.write(" ")
                    space = False
                self.write(ch)
                escaped = True
                continue
            if escaped:
                self.write(ch)
                escaped = False
                continue
            if quoted:
                if ch == '"':
                    quoted = False
                self.write(ch)
                continue
            if space and ch == '"':
                quoted = True
            if is_space(ch):
                space = True
                if ch == "\n":
                    new_lines += 1
                continue
            space_prior = space
            space = False
            if ch == "#":
                comment = True
            if open_brace and space_prior and not open_brace_written:
                if self.nesting == 0 and self.last == "}":
                    self.next_line()
                    self.next_line()
                open_brace = False
                if self.beginning_of_line:
                    self.indent()
                elif not open_brace_space:
                    self.write(" ")
                self.write("{")
                open_brace_written = True
                self.next_line()
                new_lines = 0
                if self.nesting < 10:
                    self.nesting += 1
            if ch == "{":
                open_brace = True
                open_brace_written = False
                open_brace_space = space_prior and not self.beginning_of_line
                if open_brace_space:
                    self.write(" ")
                continue
            if ch == "}" and (space_prior or not open_brace):
                if self.last != "\n":
                    self.next_line()
                if self.nesting > 0:
                    self.nesting -= 1
                self.indent()
                self.write("}")
                new_lines = 0
                continue
            for _ in range(min(new_lines, 2)):
                self.next_line()
            new_lines = 0
            if self.beginning_of_line:
                self.indent()
            if self.nesting == 0 and self.last == "}" and self.beginning_of_line:
                self.next_line()
                self.next_line()
            if not self.beginning_of_line and space_prior:
                self.write(" ")
            if open_brace and not open_brace_written:
                self.write("{")
                open_brace_written = True
            self.write(ch)
            self.beginning_of_line = False
        return "".join(self.out).strip() + "\n"


def format_caddyfile(text: str) -> str:
    """Format Caddyfile text the way ``caddy fmt`` (2.6.2) does."""
    return _Formatter().run(text)


def formatting_difference(filename: str, text: str) -> str | None:
    """``file:line: Caddyfile input is not formatted...`` or None if formatted."""
    body = text.replace("\r\n", "\n")
    formatted = format_caddyfile(body)
    if formatted == body:
        return None
    line = 1
    for i, ch in enumerate(body):
        if i >= len(formatted) or ch != formatted[i]:
            break
        if ch == "\n":
            line += 1
    return (
        f"{filename}:{line}: Caddyfile input is not formatted; "
        "run the 'caddy fmt' command to fix inconsistencies"
    )
