"""Caddy's "input is not formatted" warning (a port of ``caddy fmt``'s rules)."""

from __future__ import annotations

__all__ = ["format_caddyfile", "formatting_difference"]


def format_caddyfile(text: str) -> str:
    """Re-indent with tabs, one space between tokens, braces like ``caddy fmt``."""
    out: list[str] = []
    nesting = 0
    comment = quoted = escaped = False
    space = False
    newlines = 0
    begin_line = True
    open_brace = False
    open_brace_space = False
    open_brace_written = False
    last = ""
    heredoc = False  # heredocs do not exist in 2.6.2
    del heredoc

    def write(ch: str) -> None:
        out.append(ch)

    def indent() -> None:
        out.append("\t" * nesting)

    def next_line() -> None:
        out.append("\n")

    for ch in text.replace("\r\n", "\n"):
        if comment:
            if ch == "\n":
                comment = False
                space = False
                next_line()
                newlines = 1
                begin_line = True
                last = ch
                continue
            write(ch)
            last = ch
            continue
        if not escaped and ch == "\\":
            if space:
                write(" ")
                space = False
            write(ch)
            escaped = True
            last = ch
            continue
        if escaped:
            write(ch)
            escaped = False
            last = ch
            continue
        if quoted:
            if ch == '"':
                quoted = False
            write(ch)
            last = ch
            continue
        if space and ch == " ":
            continue
        if ch.isspace() and ch != "\n":
            space = True
            last = ch
            continue
        if ch == "\n":
            if open_brace and not open_brace_written:
                # "{" followed by newline stays as is
                pass
            newlines += 1
            space = False
            if newlines <= 2:
                next_line()
            begin_line = True
            last = ch
            continue
        if ch == "#":
            comment = True
        if open_brace and space and not open_brace_written:
            write(" ")
        open_brace = False
        open_brace_space = False
        open_brace_written = False
        del open_brace_space
        open_brace_space = False
        if ch == "{":
            open_brace = True
            open_brace_space = space
            if begin_line:
                indent()
            elif space:
                write(" ")
            write("{")
            open_brace_written = True
            nesting += 1
            space = False
            begin_line = False
            newlines = 0
            last = ch
            continue
        if ch == "}" and (space or newlines > 0 or begin_line) and nesting > 0:
            nesting -= 1
            if not begin_line:
                next_line()
            indent()
            write("}")
            space = False
            begin_line = False
            newlines = 0
            last = ch
            continue
        if begin_line:
            indent()
        elif space:
            write(" ")
        if ch == '"':
            quoted = True
        write(ch)
        space = False
        begin_line = False
        newlines = 0
        last = ch
    del last
    result = "".join(out).strip()
    # trim trailing whitespace on lines
    result = "\n".join(line.rstrip() for line in result.split("\n"))
    return result + "\n"


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
