"""``header`` and ``request_header``: the ``headers`` handler's Caddyfile forms.

``apply_header_op`` is shared with reverse_proxy's ``header_up``/``header_down``.
"""

from __future__ import annotations

from typing import Any

from ..matchers import canonical_header_key
from .registry import ConfigValue, Helper, directive


class HeaderOpError(ValueError):
    pass


def apply_header_op(
    ops: dict[str, Any],
    resp: dict[str, Any] | None,
    field: str,
    value: str,
    replacement: str,
) -> None:
    """One ``[+|-|?]Field [value [replacement]]`` operation, as Caddy applies it.

    ``ops`` is a HeaderOps JSON object; ``resp`` the enclosing response ops
    (None for request headers, where ``?`` is not allowed).
    """
    if field.startswith("+"):
        ops.setdefault("add", {}).setdefault(canonical_header_key(field[1:]), []).append(value)
    elif field.startswith("-"):
        ops.setdefault("delete", []).append(field[1:])
        if resp is not None:
            resp["deferred"] = True
    elif field.startswith("?"):
        if resp is None:
            raise HeaderOpError(
                f"{field}: the default header modifier ('?') can only be used on response "
                "headers; for conditional manipulation of request headers, use matchers"
            )
        name = field[1:]
        resp.setdefault("require", {}).setdefault("headers", {})[name] = None
        ops.setdefault("set", {})[canonical_header_key(name)] = [value]
    elif replacement:
        name = field.lstrip("+-?")
        ops.setdefault("replace", {}).setdefault(name, []).append(
            {"search_regexp": value, "replace": replacement}
        )
    else:
        ops.setdefault("set", {})[canonical_header_key(field)] = [value]


def _header_handler(resp: dict[str, Any]) -> dict[str, Any]:
    return {"handler": "headers", "response": resp}


@directive("header")
def parse_header(h: Helper) -> list[ConfigValue]:
    d = h.d
    if not d.next():
        raise d.arg_err()
    matcher = h.extract_matcher_set()
    plain: dict[str, Any] = {}
    required: dict[str, Any] = {}
    while d.next():
        has_args = False
        if d.next_arg():
            has_args = True
            field = d.val
            value = d.val if d.next_arg() else ""
            replacement = d.val if d.next_arg() else ""
            _apply(d, plain, field, value, replacement)
            if plain.get("delete"):
                plain["deferred"] = True
        while d.next_block(0):
            field = d.val
            if field == "defer":
                plain["deferred"] = True
                continue
            if has_args:
                d.fail("cannot specify headers in both arguments and block")
            field = field.removesuffix(":")
            value = d.val if d.next_arg() else ""
            replacement = d.val if d.next_arg() else ""
            _apply(d, required if field.startswith("?") else plain, field, value, replacement)
    out: list[ConfigValue] = []
    for resp in (plain, required):
        if resp:
            out.extend(h.new_route(matcher, _header_handler(resp)))
    return out


def _apply(d: Any, resp: dict[str, Any], field: str, value: str, replacement: str) -> None:
    try:
        apply_header_op(resp, resp, field, value, replacement)
    except HeaderOpError as exc:
        d.fail(str(exc))


@directive("request_header")
def parse_request_header(h: Helper) -> list[ConfigValue]:
    d = h.d
    if not d.next():
        raise d.arg_err()
    matcher = h.extract_matcher_set()
    out: list[ConfigValue] = []
    while d.next():
        if not d.next_arg():
            raise d.arg_err()
        field = d.val.removesuffix(":")
        value = d.val if d.next_arg() else ""
        replacement = ""
        if d.next_arg():
            replacement = d.val
            if d.next_arg():
                raise d.arg_err()
        ops: dict[str, Any] = {}
        try:
            apply_header_op(ops, None, field, value, replacement)
        except HeaderOpError as exc:
            d.fail(str(exc))
        out.extend(h.new_route(matcher, {"handler": "headers", "request": ops}))
    return out
