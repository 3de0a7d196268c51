"""A subset of Go's ``text/template`` for ``browse.template_file``.

Caddy renders custom listing pages with Go templates. This covers what listing
templates use: ``{{.Field.Chain}}``, variables (``$``, ``$x :=``, ``range $i, $x :=``),
``if``/``else if``/``else``, ``range`` (with ``else``), ``with``, pipelines (``|``),
parentheses, comments, trim markers (``{{-`` / ``-}}``), method calls with arguments
(``.HumanModTime "2006-01-02"``, ``.ModTime.Format "..."``) and the built-in functions
``and or not eq ne lt le gt ge len index print printf println html js urlquery``.
Anything else (``define``, ``template``, ``block``, Caddy's or sprig's extra functions)
is reported as a :class:`TemplateError` naming the template and line. As in Go's
``text/template``, nothing is escaped unless the template says ``html``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from html import escape as html_escape
from typing import Any
from urllib.parse import quote_plus

from caddytw.handlers.file_server.browse import Entry, Listing, human_size


class TemplateError(Exception):
    """A template that does not parse or fails while rendering."""


# -- Go values the templates see ------------------------------------------------------

_GO_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_GO_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_LAYOUT_TOKEN = re.compile(
    r"January|Jan|Monday|Mon|MST|2006|_2|01|02|03|04|05|06|15|1|2|3|4|5|PM|pm"
    r"|Z07:00|Z0700|Z07|-07:00|-0700|-07|[.,](?:0+|9+)(?![0-9])"
)


def go_time_format(layout: str, ns: int) -> str:
    """Format a UTC instant with a Go reference-time layout (``2006-01-02 15:04:05``)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    t = time.gmtime(seconds)
    hour12 = t.tm_hour % 12 or 12

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text[0] in ".," and len(text) > 1:
            digits = f"{fraction:09d}"[: len(text) - 1]
            if text[1] == "9":
                digits = digits.rstrip("0")
                return "." + digits if digits else ""
            return text[0] + digits
        values = {
            "January": _GO_MONTHS[t.tm_mon - 1],
            "Jan": _GO_MONTHS[t.tm_mon - 1][:3],
            "Monday": _GO_DAYS[t.tm_wday],
            "Mon": _GO_DAYS[t.tm_wday][:3],
            "MST": "UTC",
            "2006": f"{t.tm_year:04d}",
            "06": f"{t.tm_year % 100:02d}",
            "01": f"{t.tm_mon:02d}",
            "1": str(t.tm_mon),
            "02": f"{t.tm_mday:02d}",
            "_2": f"{t.tm_mday:2d}",
            "2": str(t.tm_mday),
            "15": f"{t.tm_hour:02d}",
            "03": f"{hour12:02d}",
            "3": str(hour12),
            "04": f"{t.tm_min:02d}",
            "4": str(t.tm_min),
            "05": f"{t.tm_sec:02d}",
            "5": str(t.tm_sec),
            "PM": "PM" if t.tm_hour >= 12 else "AM",
            "pm": "pm" if t.tm_hour >= 12 else "am",
            "Z07:00": "Z",
            "Z0700": "Z",
            "Z07": "Z",
            "-07:00": "+00:00",
            "-0700": "+0000",
            "-07": "+00",
        }
        return values[text]

    return _LAYOUT_TOKEN.sub(token, layout)


@dataclass(frozen=True)
class GoTime:
    """A ``time.Time`` (UTC) with the methods templates call on it."""

    ns: int

    def Format(self, layout: str) -> str:
        return go_time_format(layout, self.ns)

    def Unix(self) -> int:
        return self.ns // 1_000_000_000

    def __str__(self) -> str:
        return go_time_format("2006-01-02 15:04:05.999999999 -0700 MST", self.ns)


@dataclass(frozen=True)
class Crumb:
    Link: str
    Text: str


def _go_mode_string(mode: int) -> str:
    """Go's ``FileMode.String`` for the common cases (``drwxr-xr-x``, ``Lrwxrwxrwx``)."""
    kinds = "dalTLDpSugct?"
    prefix = "".join(kinds[i] for i in range(13) if mode & (1 << (31 - i)))
    perms = "".join("rwxrwxrwx"[i] if mode & (1 << (8 - i)) else "-" for i in range(9))
    return (prefix or "-") + perms


class GoEntry:
    """A listing item with Caddy's field and method names."""

    def __init__(self, entry: Entry) -> None:
        self.Name = entry.name
        self.Size = entry.size
        self.URL = entry.url
        self.ModTime = GoTime(entry.mod_time_ns)
        self.Mode = entry.mode
        self.IsDir = entry.is_dir
        self.IsSymlink = entry.is_symlink

    def HumanSize(self) -> str:
        return human_size(self.Size)

    def HumanModTime(self, layout: str) -> str:
        return self.ModTime.Format(layout)

    def ModeString(self) -> str:
        return _go_mode_string(self.Mode)


class GoListing:
    """The listing with Caddy's ``browseTemplateContext`` field names."""

    def __init__(self, listing: Listing) -> None:
        self.Name = listing.name
        self.Path = listing.path
        self.CanGoUp = listing.can_go_up
        self.Items = [GoEntry(e) for e in listing.items]
        self.NumDirs = listing.num_dirs
        self.NumFiles = listing.num_files
        self.Sort = listing.sort
        self.Order = listing.order
        self.Limit = listing.limit
        self.Offset = listing.offset
        self._crumbs = [Crumb(link, text) for link, text in listing.breadcrumbs()]

    def Breadcrumbs(self) -> list[Crumb]:
        return self._crumbs


# -- lexing and parsing -----------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<declare>:=|=)
    | (?P<punct>[|(),])
    | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass
class Token:
    kind: str
    text: str


def tokenize(source: str, where: str) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    while index < len(source):
        if source[index:].strip() == "":
            break
        match = _TOKEN.match(source, index)
        if match is None or match.end() == index:
            raise TemplateError(f"{where}: unexpected {source[index:].strip()[:20]!r}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        # ".Field" directly after ")" or a variable continues that operand.
        if kind == "field" and tokens and match.start(kind) == index and text != ".":
            prev = tokens[-1]
            if prev.kind in ("var", "close"):
                tokens.append(Token("chain", text))
                index = match.end()
                continue
        tokens.append(Token("close" if text == ")" else kind, text))
        index = match.end()
    return tokens


@dataclass
class Operand:
    kind: str  # field | var | string | number | bool | nil | ident | pipe
    value: Any
    chain: tuple[str, ...] = ()


@dataclass
class Command:
    operands: list[Operand]


@dataclass
class Pipeline:
    commands: list[Command]
    declare: tuple[str, ...] = ()
    assign: bool = False


@dataclass
class Node:
    kind: str  # text | action | if | range | with
    text: str = ""
    pipe: Pipeline | None = None
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)
    line: int = 0


class _Parser:
    def __init__(self, tokens: list[Token], where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.where = where

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise TemplateError(f"{self.where}: unexpected end of action")
        self.pos += 1
        return token

    def pipeline(self, allow_declare: bool = True) -> Pipeline:
        declare: list[str] = []
        assign = False
        if allow_declare:
            start = self.pos
            names = []
            while (token := self.peek()) is not None and token.kind == "var":
                names.append(self.take().text)
                if (nxt := self.peek()) is not None and nxt.text == ",":
                    self.take()
                    continue
                break
            token = self.peek()
            if names and token is not None and token.kind == "declare":
                assign = self.take().text == "="
                declare = names
            else:
                self.pos = start
        commands = [self.command()]
        while (token := self.peek()) is not None and token.text == "|":
            self.take()
            commands.append(self.command())
        return Pipeline(commands, tuple(declare), assign)

    def command(self) -> Command:
        operands = []
        while (token := self.peek()) is not None and token.text not in ("|", ")"):
            operands.append(self.operand())
        if not operands:
            raise TemplateError(f"{self.where}: missing value")
        return Command(operands)

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "string":
            text = token.text
            value = text[1:-1] if text[0] == "`" else json.loads(text)
            operand = Operand("string", value)
        elif token.kind == "number":
            operand = Operand("number", float(token.text) if "." in token.text else int(token.text))
        elif token.kind == "field":
            operand = Operand("field", tuple(p for p in token.text.split(".") if p))
        elif token.kind == "var":
            operand = Operand("var", token.text)
        elif token.kind == "ident":
            if token.text in ("true", "false"):
                operand = Operand("bool", token.text == "true")
            elif token.text == "nil":
                operand = Operand("nil", None)
            else:
                if token.text not in FUNCTIONS and token.text not in _SHORT_CIRCUIT:
                    raise TemplateError(f'{self.where}: function "{token.text}" not defined')
                operand = Operand("ident", token.text)
        elif token.text == "(":
            inner = self.pipeline(allow_declare=False)
            if self.take().kind != "close":
                raise TemplateError(f"{self.where}: unclosed parenthesis")
            operand = Operand("pipe", inner)
        else:
            raise TemplateError(f"{self.where}: unexpected {token.text!r}")
        if (nxt := self.peek()) is not None and nxt.kind == "chain":
            operand.chain = tuple(p for p in self.take().text.split(".") if p)
        return operand

    def done(self) -> None:
        token = self.peek()
        if token is not None:
            raise TemplateError(f"{self.where}: unexpected {token.text!r}")


def _actions(source: str) -> Iterator[tuple[str, str, int]]:
    """Yield ("text", text, line) and ("action", body, line), applying trim markers."""
    index = 0
    pending_trim = False
    for match in _ACTION.finditer(source):
        text = source[index : match.start()]
        if pending_trim:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        line = source.count("\n", 0, match.start()) + 1
        if text:
            yield "text", text, line
        yield "action", match.group(2).strip(), line
        pending_trim = bool(match.group(3))
        index = match.end()
    text = source[index:]
    if "{{" in text:
        line = source.count("\n", 0, index + text.index("{{")) + 1
        raise TemplateError(f"line {line}: unclosed action")
    if pending_trim:
        text = text.lstrip()
    if text:
        yield "text", text, source.count("\n") + 1


def parse(source: str, name: str) -> list[Node]:
    """Parse a whole template into a node tree."""
    root: list[Node] = []
    stack: list[tuple[Node, list[Node]]] = []
    current = root
    for kind, body, line in _actions(source):
        where = f"{name}:{line}"
        if kind == "text":
            current.append(Node("text", text=body, line=line))
            continue
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"{where}: unclosed comment")
            continue
        keyword, _, rest = body.partition(" ")
        keyword = keyword.strip()
        if keyword in ("if", "range", "with"):
            parser = _Parser(tokenize(rest, where), where)
            node = Node(keyword, pipe=parser.pipeline(), line=line)
            parser.done()
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif keyword == "else":
            if not stack:
                raise TemplateError(f"{where}: unexpected else")
            node, _ = stack[-1]
            current = node.orelse
            if rest.strip().startswith("if "):
                parser = _Parser(tokenize(rest.strip()[3:], where), where)
                nested = Node("if", pipe=parser.pipeline(), line=line)
                parser.done()
                current.append(nested)
                # The chain shares the outer "end": mark it to pop with its parent.
                stack.append((nested, current))
                nested.text = "chained"
                current = nested.body
            elif rest.strip():
                raise TemplateError(f"{where}: unsupported else {rest.strip()!r}")
        elif keyword == "end":
            if not stack:
                raise TemplateError(f"{where}: unexpected end")
            node, current = stack.pop()
            while node.text == "chained":
                node, current = stack.pop()
        elif keyword in ("define", "template", "block", "break", "continue"):
            raise TemplateError(f"{where}: {keyword!r} is not supported")
        else:
            parser = _Parser(tokenize(body, where), where)
            node = Node("action", pipe=parser.pipeline(), line=line)
            parser.done()
            current.append(node)
    if stack:
        raise TemplateError(f"{name}: unexpected EOF (missing end)")
    return root


# -- evaluation ---------------------------------------------------------------------------


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty collections are false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | tuple | dict):
        return bool(value)
    return True


def go_string(value: Any) -> str:
    """How ``{{.}}`` prints a value."""
    if value is None:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    return str(value)


def _printf(fmt: str, *args: Any) -> str:
    values = iter(args)

    def verb(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        value = next(values, None)
        spec, kind = match.group(1), match.group(2)
        if kind == "q":
            return json.dumps(go_string(value))
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if (kind in "dx" and isinstance(value, int) and numeric) or (kind in "feg" and numeric):
            return ("%" + spec + kind) % value
        return ("%" + spec + "s") % go_string(value)

    return re.sub(r"%%|%([-+ #0]*\d*(?:\.\d+)?)([vsdqfegtx])", verb, fmt)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        if not others:
            raise TemplateError("missing argument for comparison")
        return any(op(a, b) for b in others) if op is _eq else op(a, others[0])

    return compare


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _index(collection: Any, *keys: Any) -> Any:
    for key in keys:
        collection = collection[key]
    return collection


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "not": lambda value: not truth(value),
    "len": lambda value: len(value),
    "index": _index,
    "print": lambda *values: "".join(go_string(v) for v in values),
    "println": lambda *values: " ".join(go_string(v) for v in values) + "\n",
    "printf": _printf,
    "html": lambda *values: html_escape("".join(go_string(v) for v in values)),
    "js": lambda *values: json.dumps("".join(go_string(v) for v in values))[1:-1],
    "urlquery": lambda *values: quote_plus("".join(go_string(v) for v in values)),
    "eq": _compare(_eq),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
}
#: ``and`` and ``or`` stop at the first deciding argument, so the evaluator runs them.
_SHORT_CIRCUIT = ("and", "or")


class _Scope:
    def __init__(self, dot: Any) -> None:
        self.variables: list[dict[str, Any]] = [{"$": dot}]

    def lookup(self, name: str) -> Any:
        for frame in reversed(self.variables):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable {name}")

    def set(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for frame in reversed(self.variables):
                if name in frame:
                    frame[name] = value
                    return
        self.variables[-1][name] = value


def _field(value: Any, name: str, args: Sequence[Any]) -> Any:
    if name.startswith("_") or not hasattr(value, name):
        if isinstance(value, dict) and name in value:
            return value[name]
        raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
    result = getattr(value, name)
    if callable(result):
        return result(*args)
    if args:
        raise TemplateError(f"{name} is not a method but has arguments")
    return result


class _Evaluator:
    def __init__(self, where: str) -> None:
        self.where = where

    def chain(self, value: Any, names: Sequence[str], args: Sequence[Any]) -> Any:
        for position, name in enumerate(names):
            value = _field(value, name, args if position == len(names) - 1 else ())
        return value

    def operand(self, op: Operand, dot: Any, scope: _Scope, args: Sequence[Any] = ()) -> Any:
        if op.kind == "field":
            value = self.chain(dot, op.value, args if not op.chain else ())
        elif op.kind == "var":
            value = scope.lookup(op.value)
        elif op.kind == "pipe":
            value = self.pipeline(op.value, dot, scope)
        else:
            value = op.value
        if op.chain:
            value = self.chain(value, op.chain, args)
        return value

    def command(self, command: Command, dot: Any, scope: _Scope, final: Any) -> Any:
        first, rest = command.operands[0], command.operands[1:]
        extra = [] if final is _NO_VALUE else [final]
        if first.kind == "ident":
            name = first.value
            if name in _SHORT_CIRCUIT:
                result: Any = None
                for operand in [*rest, *(Operand("value", v) for v in extra)]:
                    result = self.operand(operand, dot, scope)
                    if truth(result) != (name == "and"):
                        return result
                return result
            args = [self.operand(o, dot, scope) for o in rest] + extra
            try:
                return FUNCTIONS[name](*args)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"{self.where}: error calling {name}: {exc}") from None
        args = [self.operand(o, dot, scope) for o in rest] + extra
        if first.kind in ("field", "var") or first.chain:
            return self.operand(first, dot, scope, args)
        if args:
            raise TemplateError(f"{self.where}: can't give argument to non-function")
        return self.operand(first, dot, scope)

    def pipeline(self, pipe: Pipeline, dot: Any, scope: _Scope) -> Any:
        value: Any = _NO_VALUE
        for command in pipe.commands:
            value = self.command(command, dot, scope, value)
        for name in pipe.declare[-1:]:
            scope.set(name, value, pipe.assign)
        return value


_NO_VALUE = object()


def execute(nodes: list[Node], dot: Any, scope: _Scope, out: list[str], name: str) -> None:
    for node in nodes:
        where = f"{name}:{node.line}"
        evaluator = _Evaluator(where)
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            assert node.pipe is not None
            value = evaluator.pipeline(node.pipe, dot, scope)
            if not node.pipe.declare:
                out.append(go_string(value))
        elif node.kind in ("if", "with"):
            assert node.pipe is not None
            scope.variables.append({})
            value = evaluator.pipeline(node.pipe, dot, scope)
            if truth(value):
                execute(node.body, value if node.kind == "with" else dot, scope, out, name)
            else:
                execute(node.orelse, dot, scope, out, name)
            scope.variables.pop()
        elif node.kind == "range":
            _range(node, evaluator, dot, scope, out, name)


def _range(
    node: Node, evaluator: _Evaluator, dot: Any, scope: _Scope, out: list[str], name: str
) -> None:
    assert node.pipe is not None
    pipe = Pipeline(node.pipe.commands)
    collection = evaluator.pipeline(pipe, dot, scope)
    items: list[tuple[Any, Any]]
    if isinstance(collection, dict):
        items = sorted(collection.items())
    elif isinstance(collection, int) and not isinstance(collection, bool):
        items = [(i, i) for i in range(collection)]
    elif collection is None:
        items = []
    else:
        items = list(enumerate(collection))
    if not items:
        execute(node.orelse, dot, scope, out, name)
        return
    names = node.pipe.declare
    for key, value in items:
        scope.variables.append({})
        if len(names) == 1:
            scope.set(names[0], value, False)
        elif len(names) == 2:
            scope.set(names[0], key, False)
            scope.set(names[1], value, False)
        execute(node.body, value, scope, out, name)
        scope.variables.pop()


class BrowseTemplate:
    """A parsed listing template."""

    def __init__(self, source: str, name: str) -> None:
        self.name = name
        self.nodes = parse(source, name)

    def render(self, data: Any) -> str:
        out: list[str] = []
        execute(self.nodes, data, _Scope(data), out, self.name)
        return "".join(out)

    def render_listing(self, listing: Listing) -> bytes:
        return self.render(GoListing(listing)).encode("utf-8")


class TemplateCache:
    """Template files parsed once and re-read when they change on disk (blocking IO:
    called from the listing thread)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], BrowseTemplate]] = {}

    def load(self, path: str) -> BrowseTemplate:
        try:
            info = os.stat(path)
            key = (info.st_mtime_ns, info.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"reading {path}: {exc}") from None
        template = BrowseTemplate(source, os.path.basename(path))
        self._cache[path] = (key, template)
        return template
