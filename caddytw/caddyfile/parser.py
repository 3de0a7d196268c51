"""Caddyfile structure: server blocks, snippets and imports (Caddy's ``parse.go``).

The result is a list of :class:`ServerBlock`: keys (site addresses, or none
for the global options block) and segments (one per directive, tokens as-is).
Snippets ``(name) { ... }`` are recorded and spliced in by ``import name
args...``; ``import FILE_OR_GLOB`` reads files relative to the importing file.
``{args.N}`` in imported tokens is replaced by the import arguments.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .dispenser import Dispenser
from .errors import CaddyfileError
from .lexer import Token, all_tokens

__all__ = ["ServerBlock", "parse"]

Segment = list[Token]


@dataclass
class ServerBlock:
    """One top-level block: its keys and its directive segments."""

    keys: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    has_braces: bool = False
    key_tokens: list[Token] = field(default_factory=list)


class _ImportGraph:
    """Edges "file imports file/snippet", to refuse import cycles like Caddy."""

    def __init__(self) -> None:
        self.edges: dict[str, list[str]] = {}

    def _reachable(self, start: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.edges.get(start, []))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.edges.get(node, []))
        return seen

    def add_edges(self, src: str, dests: list[str]) -> str | None:
        for dest in dests:
            if src in self._reachable(dest):
                return f"a cycle of imports exists between {src} and {dest}"
            if dest not in self.edges.setdefault(src, []):
                self.edges[src].append(dest)
        return None


_ARGS_RE = re.compile(r"\{args\.(\d+)\}")


class _Parser(Dispenser):
    def __init__(self, tokens: list[Token], environ: Mapping[str, str] | None) -> None:
        super().__init__(tokens)
        self.environ = environ
        self.block = ServerBlock()
        self.eof = False
        self.snippets: dict[str, list[Token]] = {}
        self.graph = _ImportGraph()

    def parse_all(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while self.next():
            self.block = ServerBlock()
            self._begin()
            if self.block.keys or self.block.segments:
                blocks.append(self.block)
            if self.nesting > 0:
                raise self.eof_err()
        return blocks

    def _begin(self) -> None:
        if not self.tokens:
            return
        self._addresses()
        if self.eof:
            return
        keys = self.block.keys
        if len(keys) == 1 and keys[0].startswith("(") and keys[0].endswith(")"):
            name = keys[0][1:-1]
            if name in self.snippets:
                self.fail(f"redeclaration of previously declared snippet {name}")
            self.snippets[name] = [
                Token(t.file, t.line, t.text, t.quote, name) for t in self._snippet_tokens()
            ]
            self.block.keys = []
            return
        self._block_contents()

    def _addresses(self) -> None:
        expecting_another = False
        while True:
            tkn = self.val
            if tkn == "import" and self.is_new_line():
                self._do_import()
                continue
            if tkn == "{":
                if expecting_another:
                    self.fail(f"Expected another address but had '{tkn}' - check for extra comma")
                self.block.has_braces = True
                break
            if tkn.endswith("{"):
                self.fail(
                    f"Site addresses cannot end with a curly brace: '{tkn}' - "
                    "put a space between the token and the brace"
                )
            if tkn:
                if tkn.endswith(","):
                    tkn = tkn[:-1]
                    expecting_another = True
                else:
                    expecting_another = False
                if "," in tkn:
                    self.fail(
                        f"Site addresses cannot contain a comma ',': '{tkn}' - "
                        "put a space after the comma to separate site addresses"
                    )
                self.block.keys.append(tkn)
                self.block.key_tokens.append(self.token())
            has_next = self.next()
            if expecting_another and not has_next:
                raise self.eof_err()
            if not has_next:
                self.eof = True
                break
            if not expecting_another and self.is_new_line():
                break

    def _block_contents(self) -> None:
        opened = self.val == "{"
        if not opened:
            self.cursor -= 1
        self._directives()
        if opened and self.val != "}":
            raise self.syntax_err("}")

    def _directives(self) -> None:
        while self.next():
            if self.val == "}":
                break
            if self.val == "import":
                self._do_import()
                self.cursor -= 1
                continue
            self._directive()

    def _directive(self) -> None:
        segment = [self.token()]
        while self.next():
            tok = self.token()
            if tok.text == "{":
                self.nesting += 1
                if not self.is_next_on_new_line() and not tok.quoted:
                    self.fail("Unexpected next token after '{' on same line")
            elif tok.text == "{}":
                if self.is_next_on_new_line() and not tok.quoted:
                    self.fail("Unexpected '{}' at end of line")
            elif self.is_new_line() and self.nesting == 0:
                self.cursor -= 1
                break
            elif tok.text == "}" and self.nesting > 0:
                self.nesting -= 1
            elif tok.text == "}" and self.nesting == 0:
                self.fail("Unexpected '}' because no matching opening brace")
            elif tok.text == "import" and self.is_new_line():
                self._do_import()
                self.cursor -= 1
                continue
            segment.append(tok)
        self.block.segments.append(segment)
        if self.nesting > 0:
            raise self.eof_err()

    def _snippet_tokens(self) -> list[Token]:
        if self.val != "{":
            raise self.syntax_err("{")
        nesting = 1
        out: list[Token] = []
        while self.next():
            if self.val == "}":
                nesting -= 1
                if nesting == 0:
                    break
            if self.val == "{":
                nesting += 1
            out.append(self.token())
        if nesting != 0:
            raise self.syntax_err("}")
        return out

    def _do_import(self) -> None:
        if not self.next_arg():
            raise self.arg_err()
        pattern = self.val
        if not pattern:
            self.fail("Import requires a non-empty filepath")
        args = self.remaining_args()
        before = self.tokens[: self.cursor - 1 - len(args)]
        after = self.tokens[self.cursor + 1 :]
        if pattern in self.snippets:
            imported = self.snippets[pattern]
            nodes = [f"{imported[0].file}:{imported[0].snippet}"] if imported else []
        else:
            imported, nodes = self._import_files(pattern)
        node = self.file
        if self.token().snippet:
            node += ":" + self.token().snippet
        cycle = self.graph.add_edges(node, nodes)
        if cycle:
            self.fail(cycle)

        def substitute(match: re.Match[str]) -> str:
            idx = int(match.group(1))
            return args[idx] if idx < len(args) else match.group(0)

        spliced = [t.with_text(_ARGS_RE.sub(substitute, t.text)) for t in imported]
        self.tokens = before + spliced + after
        self.cursor -= len(args) + 1

    def _import_files(self, pattern: str) -> tuple[list[Token], list[str]]:
        base = os.path.dirname(os.path.abspath(self.file))
        pat = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        pat = os.path.normpath(pat)
        if pat.count("*") > 1 or pat.count("?") > 1 or ("[" in pat and "]" in pat):
            self.fail(f"Glob pattern may only contain one wildcard (*), but has others: {pat}")
        if any(c in pat for c in "*?["):
            matches = sorted(glob.glob(pat, include_hidden=True))
        else:
            matches = [pat] if os.path.lexists(pat) else []
            if not matches:
                self.fail(f"File to import not found: {pattern}")
        tokens: list[Token] = []
        for path in matches:
            if os.path.isdir(path):
                self.fail(f"Could not import {path}: is a directory")
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                self.fail(f"Could not import {path}: {exc.strerror}")
            absolute = os.path.abspath(path)
            tokens.extend(all_tokens(text, absolute, self.environ))
        return tokens, matches


def parse(
    text: str, filename: str = "Caddyfile", environ: Mapping[str, str] | None = None
) -> list[ServerBlock]:
    """Parse Caddyfile text into server blocks, resolving snippets and imports."""
    parser = _Parser(all_tokens(text, filename, environ), environ)
    try:
        return parser.parse_all()
    except RecursionError as exc:  # pragma: no cover - defensive
        raise CaddyfileError(filename, 0, "import nesting too deep") from exc
