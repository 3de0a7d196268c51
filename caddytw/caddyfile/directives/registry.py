"""Directive registry, the ``Helper`` directives parse with, and route building.

A directive turns its segment of tokens into ``ConfigValue``s: routes for
HTTP handler directives, or other classes (``tls.*``, ``bind``,
``custom_log``, ``error_route``) the adapter consumes.  Handler routes of a
block are then sorted by Caddy's directive order and merged into a subroute
(``build_subroute``) -- the heart of why a Caddyfile behaves the same here as
under Caddy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..dispenser import Dispenser
from ..errors import CaddyfileError
from ..lexer import Token
from ..matchers import MatcherSet, matcher_set_from_token, parse_matcher_definitions

__all__ = [
    "DEFAULT_ORDER",
    "AdaptContext",
    "ConfigValue",
    "Helper",
    "Subroute",
    "build_subroute",
    "directive",
    "handler_directive",
    "lookup",
    "parse_segment_as_subroute",
]

Route = dict[str, Any]
Handler = dict[str, Any]

# Caddy 2.6.2's order, plus the later alias basic_auth and our file_sync(_ui).
DEFAULT_ORDER: tuple[str, ...] = (
    "tracing",
    "map",
    "vars",
    "root",
    "skip_log",
    "header",
    "copy_response_headers",
    "request_body",
    "redir",
    "method",
    "rewrite",
    "uri",
    "try_files",
    "basicauth",
    "basic_auth",
    "forward_auth",
    "request_header",
    "encode",
    "push",
    "templates",
    "handle",
    "handle_path",
    "route",
    "abort",
    "error",
    "copy_response",
    "respond",
    "metrics",
    "reverse_proxy",
    "file_sync",
    "file_sync_ui",
    "php_fastcgi",
    "file_server",
    "acme_server",
)


@dataclass
class Subroute:
    """A ``subroute`` handler's routes (and optional error routes)."""

    routes: list[Route] = field(default_factory=list)
    errors: list[Route] | None = None

    def to_handler(self) -> Handler:
        out: Handler = {"handler": "subroute"}
        if self.routes:
            out["routes"] = self.routes
        if self.errors is not None:
            out["errors"] = {"routes": self.errors}
        return out


@dataclass
class ConfigValue:
    """One result of a directive: a class name and a value for that class."""

    cls: str
    value: Any
    directive: str = ""


@dataclass
class AdaptContext:
    """State shared by all directives during one adaptation."""

    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    order: list[str] = field(default_factory=lambda: list(DEFAULT_ORDER))
    group_count: int = 0

    def next_group(self) -> str:
        name = f"group{self.group_count}"
        self.group_count += 1
        return name


class Helper:
    """What a directive parser gets: its tokens plus the adaptation context."""

    def __init__(
        self,
        d: Dispenser,
        ctx: AdaptContext,
        matcher_defs: dict[str, MatcherSet],
        block_segments: list[list[Token]],
    ) -> None:
        self.d = d
        self.ctx = ctx
        self.matcher_defs = matcher_defs
        self.block_segments = block_segments

    def with_dispenser(self, d: Dispenser) -> Helper:
        return Helper(d, self.ctx, self.matcher_defs, self.block_segments)

    def option(self, name: str) -> Any:
        return self.ctx.options.get(name)

    def caddyfiles(self) -> list[str]:
        """Every file the current site block's tokens came from."""
        seen: dict[str, None] = {}
        for seg in self.block_segments:
            for tok in seg:
                seen.setdefault(tok.file, None)
        return list(seen)

    def extract_matcher_set(self) -> MatcherSet | None:
        """Take a matcher token off the front of the segment, if present."""
        result: MatcherSet | None = None
        if self.d.next_arg():
            found, has = matcher_set_from_token(self.d.token(), self.matcher_defs)
            if has:
                result = found
                self.d.delete()
        self.d.reset()
        return result

    def new_route(self, matcher_set: MatcherSet | None, handler: Handler) -> list[ConfigValue]:
        route: Route = {"handle": [handler]}
        if matcher_set is not None:
            route["match"] = [matcher_set]
        return [ConfigValue("route", route)]

    def group_routes(self, values: list[ConfigValue]) -> None:
        """Put two or more routes into one mutually exclusive group."""
        routes = [v for v in values if isinstance(v.value, dict)]
        if len(routes) < 2:
            return
        name = self.ctx.next_group()
        for v in routes:
            v.value["group"] = name


DirectiveFunc = Callable[[Helper], list[ConfigValue]]
HandlerFunc = Callable[[Helper], Handler]

_DIRECTIVES: dict[str, DirectiveFunc] = {}


def directive(*names: str) -> Callable[[DirectiveFunc], DirectiveFunc]:
    """Register a directive producing arbitrary config values."""

    def register(fn: DirectiveFunc) -> DirectiveFunc:
        for name in names:
            if name in _DIRECTIVES:
                raise ValueError(f"directive {name} already registered")
            _DIRECTIVES[name] = fn
        return fn

    return register


def handler_directive(*names: str) -> Callable[[HandlerFunc], HandlerFunc]:
    """Register a directive that is one HTTP handler behind an optional matcher."""

    def register(fn: HandlerFunc) -> HandlerFunc:
        def as_directive(h: Helper) -> list[ConfigValue]:
            if not h.d.next():
                raise h.d.arg_err()
            matcher = h.extract_matcher_set()
            return h.new_route(matcher, fn(h))

        directive(*names)(as_directive)
        return fn

    return register


def lookup(name: str) -> DirectiveFunc | None:
    return _DIRECTIVES.get(name)


def normalize_directive_name(name: str) -> str:
    return "handle" if name == "handle_path" else name


def run_directive(h: Helper, segment: list[Token], unknown_hint: str = "") -> list[ConfigValue]:
    """Run the directive a segment starts with; tag results with its name."""
    name = segment[0].text
    fn = lookup(name)
    if fn is None:
        tok = segment[0]
        raise CaddyfileError(tok.file, tok.line, f"unrecognized directive: {name}{unknown_hint}")
    results = fn(h.with_dispenser(Dispenser(list(segment))))
    norm = normalize_directive_name(name)
    for r in results:
        r.directive = norm
    return results


def parse_segment_as_config(h: Helper) -> list[ConfigValue]:
    """Parse ``directive [matcher] { sub-directives }`` as a nested site block."""
    results: list[ConfigValue] = []
    d = h.d
    while d.next():
        if d.next_arg():
            raise d.arg_err()
        segments: list[list[Token]] = []
        nesting = d.nesting
        while d.next_block(nesting):
            segments.append(d.next_segment())
        defs = dict(h.matcher_defs)
        kept: list[list[Token]] = []
        for seg in segments:
            if seg[0].text.startswith("@"):
                parse_matcher_definitions(Dispenser(seg), defs)
            else:
                kept.append(seg)
        sub = Helper(d, h.ctx, defs, h.block_segments)
        for seg in kept:
            results.extend(
                run_directive(
                    sub,
                    seg,
                    " - are you sure your Caddyfile structure (nesting and braces) is correct?",
                )
            )
    return results


def parse_segment_as_subroute(h: Helper) -> Subroute:
    return build_subroute(parse_segment_as_config(h), h.ctx)


def _path_len(route: Route) -> int:
    sets = route.get("match") or []
    if len(sets) == 1:
        paths = sets[0].get("path")
        if isinstance(paths, list) and len(paths) == 1:
            return len(paths[0])
    return 0


def sort_routes(values: list[ConfigValue], order: list[str]) -> list[ConfigValue]:
    """Caddy's ``sortRoutes``: directive order, then more specific matchers first."""
    pos = {name: i for i, name in enumerate(order)}

    def less(a: ConfigValue, b: ConfigValue) -> bool:
        if a.directive != b.directive:
            return pos.get(a.directive, 0) < pos.get(b.directive, 0)
        if not isinstance(a.value, dict) or not isinstance(b.value, dict):
            return False
        alen, blen = _path_len(a.value), _path_len(b.value)
        amatch, bmatch = bool(a.value.get("match")), bool(b.value.get("match"))
        if a.directive == "vars":
            if alen > 0 and blen > 0:
                return alen < blen
            return not amatch and bmatch
        if alen > 0 and blen > 0:
            return alen > blen
        return amatch and not bmatch

    return go_stable_sort(values, less)


def go_stable_sort(items: list[Any], less: Callable[[Any, Any], bool]) -> list[Any]:
    """Go's ``sort.SliceStable`` (insertion sort in blocks of 20, then merges).

    Matching Go's algorithm matters because Caddy's comparators are not
    always strict weak orders; the same algorithm gives the same result.
    """
    data = list(items)
    n = len(data)

    def insertion(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and less(data[j], data[j - 1]):
                data[j], data[j - 1] = data[j - 1], data[j]
                j -= 1

    def rotate(a: int, m: int, b: int) -> None:
        data[a:b] = data[m:b] + data[a:m]

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) // 2
                if less(data[h], data[a]):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                data[k], data[k + 1] = data[k + 1], data[k]
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) // 2
                if not less(data[m], data[h]):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                data[k], data[k - 1] = data[k - 1], data[k]
            return
        mid = (a + b) // 2
        nn = mid + m
        if m > mid:
            start, r = nn - b, mid
        else:
            start, r = a, m
        p = nn - 1
        while start < r:
            c = (start + r) // 2
            if not less(data[p - c], data[c]):
                start = c + 1
            else:
                r = c
        end = nn - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    block = 20
    a, b = 0, block
    while b <= n:
        insertion(a, b)
        a, b = b, b + block
    insertion(a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            sym_merge(a, a + block, b)
            a, b = b, b + 2 * block
        m = a + block
        if m < n:
            sym_merge(a, m, n)
        block *= 2
    return data


def consolidate_routes(routes: list[Route]) -> list[Route]:
    """Merge adjacent routes with identical matchers, terminal flag and group."""
    out: list[Route] = []
    for route in routes:
        if out:
            prev = out[-1]
            if (
                _canon(prev.get("match")) == _canon(route.get("match"))
                and bool(prev.get("terminal")) == bool(route.get("terminal"))
                and prev.get("group", "") == route.get("group", "")
            ):
                prev["handle"] = list(prev.get("handle", [])) + list(route.get("handle", []))
                continue
        out.append(dict(route))
    return out


def _canon(value: Any) -> str:
    return json.dumps(value or None, sort_keys=True)


_EXCLUSIVE = ("handle", "rewrite", "root")  # sorted, as Caddy iterates them


def build_subroute(values: list[ConfigValue], ctx: AdaptContext) -> Subroute:
    """Sort handler routes by directive order and group exclusive directives."""
    for v in values:
        if v.directive not in ctx.order:
            raise CaddyfileError(
                "Caddyfile",
                0,
                f"directive '{v.directive}' is not an ordered HTTP handler, "
                "so it cannot be used here",
            )
    values = sort_routes(values, ctx.order)
    groups: dict[str, str] = {}
    for name in _EXCLUSIVE:
        count = sum(1 for v in values if v.directive == name)
        if count > 1 or name == "rewrite":
            groups[name] = ctx.next_group()
    sub = Subroute()
    for v in values:
        if v.directive in groups and isinstance(v.value, dict):
            v.value = dict(v.value)
            v.value["group"] = groups[v.directive]
        if isinstance(v.value, Subroute):
            sub.routes.extend(v.value.routes)
        else:
            sub.routes.append(v.value)
    sub.routes = consolidate_routes(sub.routes)
    return sub
