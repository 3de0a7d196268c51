"""Request matchers in Caddyfile syntax -> their JSON forms.

Covers named matcher definitions (``@name { path /x; method GET }`` or on
one line), the inline matcher tokens directives take as first argument
(``*``, ``/path``, ``@name``), and each matcher module's own Caddyfile
syntax, producing the JSON Caddy's modules marshal to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .dispenser import Dispenser
from .errors import CaddyfileError
from .lexer import Token

__all__ = [
    "MatcherSet",
    "canonical_header_key",
    "matcher_set_from_token",
    "parse_matcher_definitions",
    "parse_nested_matcher_set",
]

MatcherSet = dict[str, Any]
MatcherDefs = dict[str, MatcherSet]
_Unmarshal = Callable[[Dispenser], Any]


def canonical_header_key(key: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey`` (``x-foo`` -> ``X-Foo``)."""
    if not key or any(not (c.isalnum() or c in "!#$%&'*+-.^_`|~") or ord(c) > 127 for c in key):
        return key
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def _list_matcher(kind: str) -> _Unmarshal:
    def parse(d: Dispenser) -> list[str]:
        out: list[str] = []
        while d.next():
            out.extend(d.remaining_args())
            if d.next_block(0):
                d.fail(f"malformed {kind} matcher: blocks are not supported")
        return out

    return parse


def _query(d: Dispenser) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    while d.next():
        for query in d.remaining_args():
            if not query:
                continue
            key, sep, value = query.partition("=")
            if not sep:
                d.fail(f"malformed query matcher token: {d.val}; must be in param=val format")
            out.setdefault(key, []).append(value)
        if d.next_block(0):
            d.fail("malformed query matcher: blocks are not supported")
    return out


def _header(d: Dispenser) -> dict[str, list[str] | None]:
    out: dict[str, list[str] | None] = {}
    while d.next():
        if not d.next_arg():
            d.fail("malformed header matcher: expected field")
        field = d.val
        if field.startswith("!"):
            if len(field) == 1:
                d.fail("malformed header matcher: must have field name following ! character")
            out[field[1:]] = None
            if d.next_arg():
                d.fail("malformed header matcher: null matching headers cannot have a field value")
        else:
            if not d.next_arg():
                d.fail("malformed header matcher: expected both field and value")
            key = canonical_header_key(field)
            existing = out.get(key)
            out[key] = (existing or []) + [d.val]
        if d.next_block(0):
            d.fail("malformed header matcher: blocks are not supported")
    return out


def _regexp_map(kind: str, once: bool) -> _Unmarshal:
    def parse(d: Dispenser) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        while d.next():
            two = d.args(2)
            if two is None:
                raise d.arg_err()
            third = d.args(1)
            if third is not None:
                name, field, pattern = two[0], two[1], third[0]
            else:
                name, field, pattern = "", two[0], two[1]
            if once and field in out:
                d.fail(
                    f"{kind} matcher can only be used once per named matcher, "
                    f"per header field: {field}"
                )
            out[field] = _regexp_json(name, pattern)
            if d.next_block(0):
                d.fail(f"malformed {kind} matcher: blocks are not supported")
        return out

    return parse


def _regexp_json(name: str, pattern: str) -> dict[str, str]:
    out = {"pattern": pattern}
    if name:
        out["name"] = name
    return out


def _path_regexp(d: Dispenser) -> dict[str, str]:
    result: dict[str, str] = {}
    while d.next():
        if result:
            d.fail("regular expression can only be used once per named matcher")
        args = d.remaining_args()
        if len(args) == 1:
            result = _regexp_json("", args[0])
        elif len(args) == 2:
            result = _regexp_json(args[0], args[1])
        else:
            raise d.arg_err()
        if d.next_block(0):
            d.fail("malformed path_regexp matcher: blocks are not supported")
    return result


def _protocol(d: Dispenser) -> str:
    proto = ""
    while d.next():
        args = d.args(1)
        if args is None:
            d.fail("expected exactly one protocol")
        proto = args[0]
    return proto


def _remote_ip(d: Dispenser) -> dict[str, Any]:
    ranges: list[str] = []
    forwarded = False
    while d.next():
        while d.next_arg():
            if d.val == "forwarded":
                if ranges:
                    d.fail("if used, 'forwarded' must be first argument")
                forwarded = True
            elif d.val == "private_ranges":
                ranges.extend(
                    [
                        "192.168.0.0/16",
                        "172.16.0.0/12",
                        "10.0.0.0/8",
                        "127.0.0.1/8",
                        "fd00::/8",
                        "::1",
                    ]
                )
            else:
                ranges.append(d.val)
        if d.next_block(0):
            d.fail("malformed remote_ip matcher: blocks are not supported")
    out: dict[str, Any] = {}
    if ranges:
        out["ranges"] = ranges
    if forwarded:
        out["forwarded"] = True
    return out


def _file(d: Dispenser) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try_files: list[str] = []
    while d.next():
        try_files.extend(d.remaining_args())
        while d.next_block(0):
            sub = d.val
            if sub == "root":
                if not d.next_arg():
                    raise d.arg_err()
                out["root"] = d.val
            elif sub == "try_files":
                try_files.extend(d.remaining_args())
                if not try_files:
                    raise d.arg_err()
            elif sub == "try_policy":
                if not d.next_arg():
                    raise d.arg_err()
                out["try_policy"] = d.val
            elif sub == "split_path":
                split = d.remaining_args()
                if not split:
                    raise d.arg_err()
                out["split_path"] = split
            else:
                d.fail(f"unrecognized subdirective: {sub}")
    if try_files:
        out["try_files"] = try_files
    return out


def _expression(d: Dispenser) -> str:
    expr = ""
    while d.next():
        if d.count_remaining_args() > 1:
            raw: list[str] = []
            while d.next_arg():
                raw.append(d.val_raw())
            expr = " ".join(raw)
        else:
            expr = d.val
    return expr


def _vars(d: Dispenser) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    while d.next():
        if not d.next_arg():
            d.fail("malformed vars matcher: expected field name")
        field = d.val
        vals = d.remaining_args()
        if not vals:
            d.fail("malformed vars matcher: expected at least one value to match against")
        out.setdefault(field, []).extend(vals)
        if d.next_block(0):
            d.fail("malformed vars matcher: blocks are not supported")
    return out


def _not(d: Dispenser) -> list[MatcherSet]:
    sets: list[MatcherSet] = []
    while d.next():
        sets.append(parse_nested_matcher_set(d))
    return sets


MATCHERS: dict[str, _Unmarshal] = {
    "host": _list_matcher("host"),
    "path": _list_matcher("path"),
    "method": _list_matcher("method"),
    "query": _query,
    "header": _header,
    "header_regexp": _regexp_map("header_regexp", once=True),
    "path_regexp": _path_regexp,
    "protocol": _protocol,
    "remote_ip": _remote_ip,
    "file": _file,
    "expression": _expression,
    "vars": _vars,
    "vars_regexp": _regexp_map("vars_regexp", once=False),
    "not": _not,
}


def _make_matcher(name: str, tokens: list[Token]) -> Any:
    """Run matcher ``name``'s Caddyfile parser over its tokens."""
    parse = MATCHERS.get(name)
    if parse is None:
        tok = tokens[0]
        raise CaddyfileError(
            tok.file,
            tok.line,
            f"getting matcher module '{name}': module not registered: http.matchers.{name}",
        )
    return parse(Dispenser(tokens))


def _matchers_from_tokens(d: Dispenser) -> MatcherSet:
    """Group ``name args...`` lines (same line or a block) by matcher name."""
    by_name: dict[str, list[Token]] = {}
    nesting = d.nesting
    while d.next_arg() or d.next_block(nesting):
        by_name.setdefault(d.val, []).extend(d.next_segment())
    return {name: _make_matcher(name, toks) for name, toks in by_name.items()}


def parse_nested_matcher_set(d: Dispenser) -> MatcherSet:
    """A matcher set written inline or as a block (used by ``not``)."""
    return _matchers_from_tokens(d)


def parse_matcher_definitions(d: Dispenser, defs: MatcherDefs) -> None:
    """Record every ``@name ...`` definition found in ``d`` into ``defs``."""
    while d.next():
        name = d.val
        if name in defs:
            raise CaddyfileError(d.file, d.line, f"matcher is defined more than once: {name}")
        if d.next_arg():
            tok = d.token()
            if tok.quoted:
                defs[name] = {"expression": _make_matcher("expression", [tok])}
                continue
            d.prev()
        defs[name] = _matchers_from_tokens(d)


def matcher_set_from_token(tok: Token, defs: MatcherDefs) -> tuple[MatcherSet | None, bool]:
    """Interpret a directive's first argument as a matcher, if it is one."""
    if tok.text == "*":
        return None, True
    if tok.text.startswith("/"):
        return {"path": [tok.text]}, True
    if tok.text.startswith("@"):
        found = defs.get(tok.text)
        if found is None:
            raise CaddyfileError(tok.file, tok.line, f"unrecognized matcher name: {tok.text}")
        return found, True
    return None, False
