"""The ``expression`` matcher: a CEL expression over the request, as Caddy's celmatcher.

Caddy rewrites every placeholder in the expression (``{http.request.method}``; the
Caddyfile's shorthands such as ``{method}`` are expanded by the adapter) into a call
that reads the placeholder for the request. Here each distinct placeholder becomes a CEL
variable (``caddy_ph0``...) bound per request to the placeholder's value (``null`` when
it is unknown), so the expression is compiled once, at config load, by a maintained CEL
implementation: ``common-expression-language`` (Rust ``cel-interpreter`` bindings,
about 20 µs an evaluation where pure-Python ``cel-python`` took about 2 ms).

Caddy's matcher functions (``path('/api/*')``, ``host(...)``, ``method(...)``,
``header({...})``, ``query({...})``, ``protocol(...)``, ``remote_ip(...)``,
``client_ip(...)``, ``file(...)``, ``path_regexp(...)``, ``header_regexp(...)``,
``vars({...})``) are macros there: their arguments must be literals
(a bare placeholder counts as its ``"{...}"`` string, as Caddy reads it back), and the
matcher is built once, at load. Here each call is cut out of the text before compiling,
its arguments evaluated as a constant CEL list and turned into the JSON matcher Caddy
builds (so the same builders, errors and placeholders apply), and the call replaced by
``caddy_match(N)``: a function that runs matcher N on the request being evaluated.
CEL's ``&&``/``||`` short-circuit, so a matcher runs only when the expression needs it
(``path_regexp`` captures and ``file``'s placeholders are set as Caddy sets them).

An expression that does not compile, names a variable that is not a placeholder, or
gives a matcher function arguments that are not literals is a config error at its JSON
path (Caddy's provisioning rejects all three); an evaluation that fails or gives
something other than a boolean does not match (Caddy logs and skips).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from caddytw.config.errors import ConfigError
from caddytw.http.placeholders import resolve

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest

log = Logger()

#: Caddy's ``placeholderRegexp``.
PLACEHOLDER = re.compile(r"\{([a-zA-Z][\w.-]+)\}")
VARIABLE_PREFIX = "caddy_ph"
MATCH_FUNCTION = "caddy_match"

Matcher = Callable[["CaddyRequest"], bool]


def _strings(name: str, args: list[Any], low: int = 1, high: int = 1 << 30) -> list[str]:
    if not low <= len(args) <= high or not all(isinstance(a, str) for a in args):
        wanted = f"{low}" if low == high else f"{low} or more" if high > 99 else f"{low}-{high}"
        raise ValueError(f"{name}() takes {wanted} string arguments")
    return list(args)


def _string_map(name: str, args: list[Any]) -> dict[str, list[str]]:
    """``{'Field': 'v'}`` or ``{'Field': ['v1', 'v2']}``, the only argument."""
    if len(args) != 1 or not isinstance(args[0], dict):
        raise ValueError(f"{name}() takes one map argument")
    result: dict[str, list[str]] = {}
    for key, value in args[0].items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(key, str) or not isinstance(values, list):
            raise ValueError(f"{name}() takes a map of strings to strings or lists")
        result[key] = values
    return result


def _regexp_args(name: str, args: list[Any], fields: int) -> tuple[str, list[str]]:
    """``(pattern)``/``(name, pattern)`` plus ``fields`` leading field names."""
    strings = _strings(name, args, 1 + fields, 2 + fields)
    if len(strings) == 2 + fields:
        return strings[0], strings[1:]
    return "", strings


def _ip_ranges(name: str, args: list[Any]) -> dict[str, Any]:
    ranges = _strings(name, args)
    if name == "remote_ip" and ranges[0] == "forwarded":  # Caddy 2.6's first-arg flag
        return {"ranges": ranges[1:], "forwarded": True}
    return {"ranges": ranges}


def _file_args(args: list[Any]) -> dict[str, Any]:
    if not args:  # as Caddy: "matcher requires at least one argument"
        raise ValueError("file() requires at least one argument")
    if len(args) == 1 and isinstance(args[0], dict):
        return dict(args[0])
    return {"try_files": _strings("file", args)}


def _path_regexp(args: list[Any]) -> dict[str, Any]:
    name, (pattern,) = _regexp_args("path_regexp", args, 0)
    return {"name": name, "pattern": pattern}


def _header_regexp(args: list[Any]) -> dict[str, Any]:
    name, (field, pattern) = _regexp_args("header_regexp", args, 1)
    return {field: {"name": name, "pattern": pattern}}


#: Caddy's CEL matcher functions: the arguments (Python values) -> the JSON matcher.
MACROS: dict[str, Callable[[list[Any]], tuple[str, Any]]] = {
    "host": lambda a: ("host", _strings("host", a)),
    "path": lambda a: ("path", _strings("path", a)),
    "method": lambda a: ("method", _strings("method", a)),
    "protocol": lambda a: ("protocol", _strings("protocol", a, 1, 1)[0]),
    "header": lambda a: ("header", _string_map("header", a)),
    "query": lambda a: ("query", _string_map("query", a)),
    "vars": lambda a: ("vars", _string_map("vars", a)),
    "remote_ip": lambda a: ("remote_ip", _ip_ranges("remote_ip", a)),
    "client_ip": lambda a: ("client_ip", _ip_ranges("client_ip", a)),
    "file": lambda a: ("file", _file_args(a)),
    "path_regexp": lambda a: ("path_regexp", _path_regexp(a)),
    "header_regexp": lambda a: ("header_regexp", _header_regexp(a)),
}


def _string_end(text: str, start: int) -> int:
    """The index after the CEL string literal opening at ``start`` (quote char there)."""
    quote = text[start]
    if text.startswith(quote * 3, start):
        end = text.find(quote * 3, start + 3)
        return len(text) if end == -1 else end + 3
    index = start + 1
    while index < len(text) and text[index] != quote:
        index += 2 if text[index] == "\\" else 1
    return index + 1


def _closing_paren(text: str, start: int) -> int:
    """The index of the ``)`` matching the ``(`` at ``start`` (-1 when there is none)."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char in "'\"":
            index = _string_end(text, index)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _quote_placeholders(text: str) -> str:
    """Bare placeholders outside string literals as ``"{...}"`` strings."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char in "'\"":
            end = _string_end(text, index)
            out.append(text[index:end])
            index = end
            continue
        found = PLACEHOLDER.match(text, index)
        if found:
            out.append('"' + found.group(0) + '"')
            index = found.end()
            continue
        out.append(char)
        index += 1
    return "".join(out)


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def extract_macros(expression: str) -> tuple[str, list[tuple[str, list[Any]]]]:
    """The expression with each matcher-function call as ``caddy_match(N)``, and each
    call's ``(name, arguments)``. Raises ``ValueError`` for arguments that are not
    literals."""
    import cel

    out: list[str] = []
    calls: list[tuple[str, list[Any]]] = []
    index = 0
    while index < len(expression):
        char = expression[index]
        if char in "'\"":
            end = _string_end(expression, index)
            out.append(expression[index:end])
            index = end
            continue
        word = IDENTIFIER.match(expression, index)
        if word is None:
            out.append(char)
            index += 1
            continue
        name, after = word.group(0), word.end()
        before = "".join(out).rstrip()
        while after < len(expression) and expression[after].isspace():
            after += 1
        is_call = after < len(expression) and expression[after] == "("
        if (
            name not in MACROS
            or not is_call
            or before.endswith(".")
            or (index and (expression[index - 1].isalnum() or expression[index - 1] == "_"))
        ):
            out.append(name)
            index = word.end()
            continue
        close = _closing_paren(expression, after)
        if close == -1:
            out.append(name)
            index = word.end()
            continue
        source = expression[after + 1 : close]
        try:
            args = cel.evaluate("[" + _quote_placeholders(source) + "]")
        except Exception:
            raise ValueError(
                f"the arguments of {name}() must be literals, got {source!r}"
            ) from None
        out.append(f"{MATCH_FUNCTION}({len(calls)})")
        calls.append((name, list(args)))
        index = close + 1
    return "".join(out), calls


def translate(expression: str) -> tuple[str, tuple[str, ...]]:
    """The expression with its placeholders as variables, and the placeholder per
    variable index (each distinct placeholder once)."""
    keys: list[str] = []

    def variable(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in keys:
            keys.append(key)
        return f"{VARIABLE_PREFIX}{keys.index(key)}"

    return PLACEHOLDER.sub(variable, expression), tuple(keys)


class ExpressionMatcher:
    def __init__(
        self, source: str, program: Any, keys: tuple[str, ...], matchers: tuple[Matcher, ...] = ()
    ) -> None:
        self.source = source
        self.program = program
        self.keys = keys
        self.matchers = matchers

    def __call__(self, request: CaddyRequest) -> bool:
        variables = {
            f"{VARIABLE_PREFIX}{i}": resolve(request, key) for i, key in enumerate(self.keys)
        }
        context: Any = variables
        if self.matchers:
            import cel

            def run(index: int) -> bool:
                return bool(self.matchers[index](request))

            context = cel.Context(variables=variables, functions={MATCH_FUNCTION: run})
        try:
            result = self.program.execute(context)
        except Exception as error:  # the library raises plain ValueError/RuntimeError
            log.debug("CEL expression {source!r} failed: {error}", source=self.source, error=error)
            return False
        return result is True


def build_expression(
    value: Any, path: str, builders: Mapping[str, Callable[[Any, str], Any]]
) -> ExpressionMatcher:
    """``"expression": "<CEL>"`` (or Caddy's later ``{"expr": ..., "name": ...}``).

    ``builders`` are the JSON matcher builders (:data:`caddytw.http.matchers.MATCHERS`)
    that Caddy's macros such as ``path('/a*')`` expand to, passed in so this module
    does not import the matchers that import it."""
    if isinstance(value, dict) and isinstance(value.get("expr"), str):
        path, value = f"{path}.expr", value["expr"]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "expected a CEL expression (a non-empty string)")
    import cel  # imported on first use: most configs have no expression matcher

    try:
        without_macros, calls = extract_macros(value)
    except ValueError as error:
        raise ConfigError(path, f"CEL expression {value!r}: {error}") from None
    matchers = []
    for name, args in calls:
        try:
            kind, argument = MACROS[name](args)
        except ValueError as error:
            raise ConfigError(path, f"CEL expression {value!r}: {error}") from None
        matchers.append(builders[kind](argument, f"{path} ({name}())"))
    translated, keys = translate(without_macros)
    try:
        program = cel.compile(translated)
    except (ValueError, RuntimeError) as error:
        hint = ""
        if "`" in value:
            # The Caddyfile keeps `...` inside an expression as written; Caddy's cel-go
            # rejects it too ("token recognition error at: '`'").
            hint = " (CEL has no `backtick` strings: quote with ' or \")"
        raise ConfigError(path, f"compiling CEL expression{hint}: {error}") from None
    known = {f"{VARIABLE_PREFIX}{i}" for i in range(len(keys))}
    unknown = sorted(set(program.variables()) - known)
    if unknown:
        raise ConfigError(
            path,
            f"CEL expression {value!r}: undeclared reference to {', '.join(unknown)} "
            "(use placeholders such as {http.request.method})",
        )
    return ExpressionMatcher(value, program, keys, tuple(matchers))
