"""The ``expression`` matcher: a CEL expression over the request, as Caddy's celmatcher.

Caddy rewrites every placeholder in the expression (``{http.request.method}``; the
Caddyfile's shorthands such as ``{method}`` are expanded by the adapter) into a call
that reads the placeholder for the request. Here each distinct placeholder becomes a CEL
variable (``caddy_ph0``...) bound per request to the placeholder's value (``null`` when
it is unknown), so the expression is compiled once, at config load, by a maintained CEL
implementation: ``common-expression-language`` (Rust ``cel-interpreter`` bindings,
about 20 µs an evaluation where pure-Python ``cel-python`` took about 2 ms).

An expression that does not compile, or names a variable that is not a placeholder, is
a config error at its JSON path (Caddy's provisioning rejects both); an evaluation that
fails or gives something other than a boolean does not match (Caddy logs and skips).
"""

from __future__ import annotations

import re
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
    def __init__(self, source: str, program: Any, keys: tuple[str, ...]) -> None:
        self.source = source
        self.program = program
        self.keys = keys

    def __call__(self, request: CaddyRequest) -> bool:
        context = {
            f"{VARIABLE_PREFIX}{i}": resolve(request, key) for i, key in enumerate(self.keys)
        }
        try:
            result = self.program.execute(context)
        except Exception as error:  # the library raises plain ValueError/RuntimeError
            log.debug("CEL expression {source!r} failed: {error}", source=self.source, error=error)
            return False
        return result is True


def build_expression(value: Any, path: str) -> ExpressionMatcher:
    """``"expression": "<CEL>"`` (or Caddy's later ``{"expr": ..., "name": ...}``)."""
    if isinstance(value, dict) and isinstance(value.get("expr"), str):
        path, value = f"{path}.expr", value["expr"]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "expected a CEL expression (a non-empty string)")
    import cel  # imported on first use: most configs have no expression matcher

    translated, keys = translate(value)
    try:
        program = cel.compile(translated)
    except (ValueError, RuntimeError) as error:
        raise ConfigError(path, f"compiling CEL expression: {error}") from None
    known = {f"{VARIABLE_PREFIX}{i}" for i in range(len(keys))}
    unknown = sorted(set(program.variables()) - known)
    if unknown:
        raise ConfigError(
            path,
            f"CEL expression {value!r}: undeclared reference to {', '.join(unknown)} "
            "(use placeholders such as {http.request.method})",
        )
    return ExpressionMatcher(value, program, keys)
