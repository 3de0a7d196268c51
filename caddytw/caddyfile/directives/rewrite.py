"""URI manipulation directives: ``rewrite``, ``method``, ``uri``, ``try_files``."""

from __future__ import annotations

from typing import Any

from ..values import atoi
from .registry import ConfigValue, Handler, Helper, directive, handler_directive


def _single_arg(h: Helper, key: str) -> Handler:
    d = h.d
    out: Handler = {"handler": "rewrite"}
    while d.next():
        if not d.next_arg():
            raise d.arg_err()
        out[key] = d.val
        if d.next_arg():
            raise d.arg_err()
    return out


@handler_directive("rewrite")
def parse_rewrite(h: Helper) -> Handler:
    return _single_arg(h, "uri")


@handler_directive("method")
def parse_method(h: Helper) -> Handler:
    return _single_arg(h, "method")


@handler_directive("uri")
def parse_uri(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "rewrite"}
    while d.next():
        args = d.remaining_args()
        if len(args) < 2:
            raise d.arg_err()
        op = args[0]
        if op == "strip_prefix":
            if len(args) > 2:
                raise d.arg_err()
            prefix = args[1]
            out["strip_path_prefix"] = prefix if prefix.startswith("/") else "/" + prefix
        elif op == "strip_suffix":
            if len(args) > 2:
                raise d.arg_err()
            out["strip_path_suffix"] = args[1]
        elif op == "replace":
            if len(args) not in (3, 4):
                raise d.arg_err()
            repl: dict[str, Any] = {"find": args[1], "replace": args[2]}
            if len(args) == 4:
                try:
                    limit = atoi(args[3])
                except ValueError as exc:
                    d.fail(f"limit must be an integer; invalid: {exc}")
                if limit:
                    repl["limit"] = limit
            out.setdefault("uri_substring", []).append(repl)
        elif op == "path_regexp":
            if len(args) != 3:
                raise d.arg_err()
            out.setdefault("path_regexp", []).append({"find": args[1], "replace": args[2]})
        else:
            d.fail(f"unrecognized URI manipulation '{op}'")
    return out


_TRY_POLICIES = ("first_exist", "largest_size", "smallest_size", "most_recently_modified")


@directive("try_files")
def parse_try_files(h: Helper) -> list[ConfigValue]:
    """One rewrite route per group of candidates, all in one exclusive group."""
    d = h.d
    if not d.next():
        raise d.arg_err()
    candidates = d.remaining_args()
    if not candidates:
        raise d.arg_err()
    policy = ""
    nesting = d.nesting
    while d.next_block(nesting):
        if d.val == "policy":
            if policy:
                d.fail("try policy already configured")
            if not d.next_arg():
                raise d.arg_err()
            policy = d.val
            if policy not in _TRY_POLICIES:
                d.fail(f"unrecognized try policy: {policy}")

    def make_route(tries: list[str], query: str) -> list[ConfigValue]:
        match: dict[str, Any] = {"try_files": tries}
        if policy:
            match["try_policy"] = policy
        handler = {"handler": "rewrite", "uri": "{http.matchers.file.relative}" + query}
        return h.new_route({"file": match}, handler)

    result: list[ConfigValue] = []
    pending: list[str] = []
    for item in candidates:
        idx = item.find("?")
        if idx >= 0:
            if pending:
                result.extend(make_route(pending, ""))
                pending = []
            result.extend(make_route([item[:idx]], item[idx:]))
            continue
        pending.append(item)
    if pending:
        result.extend(make_route(pending, ""))
    h.group_routes(result)
    return result
