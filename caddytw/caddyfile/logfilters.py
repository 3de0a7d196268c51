"""The ``filter`` log encoder (``wrap`` + per-field filters) in Caddy 2.6.2's
Caddyfile syntax: ``format filter { wrap json  fields { request>remote_ip ip_mask {...} } }``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .dispenser import Dispenser
from .errors import unregistered
from .values import atoi

Encoder = dict[str, Any]


def _delete(d: Dispenser) -> dict[str, Any]:
    return {}


def _one_optional(key: str) -> Callable[[Dispenser], dict[str, Any]]:
    def parse(d: Dispenser) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while d.next():
            if d.next_arg():
                out[key] = d.val
        return out

    return parse


def _regexp(d: Dispenser) -> dict[str, Any]:
    out: dict[str, Any] = {}
    while d.next():
        if d.next_arg():
            out["regexp"] = d.val
        if d.next_arg():
            out["value"] = d.val
    return out


def _ip_mask(d: Dispenser) -> dict[str, Any]:
    out: dict[str, Any] = {}
    while d.next():
        while d.next_block(0):
            sub = d.val
            if sub not in ("ipv4", "ipv6"):
                d.fail(f"unrecognized subdirective {sub}")
            if not d.next_arg():
                raise d.arg_err()
            try:
                out[f"{sub}_cidr"] = atoi(d.val)
            except ValueError as exc:
                d.fail(f"error parsing {d.val}: {exc}")
    return out


def _actions(key: str) -> Callable[[Dispenser], dict[str, Any]]:
    """``query`` and ``cookie``: ``replace NAME VALUE``, ``hash NAME``, ``delete NAME``
    (the name is ``parameter`` in query actions, ``name`` in cookie ones)."""

    def parse(d: Dispenser) -> dict[str, Any]:
        return _parse_actions(d, key)

    return parse


def _parse_actions(d: Dispenser, key: str) -> dict[str, Any]:
    actions: list[dict[str, str]] = []
    while d.next():
        while d.next_block(0):
            kind = d.val
            if kind not in ("replace", "hash", "delete"):
                d.fail(f"unrecognized subdirective {kind}")
            if not d.next_arg():
                raise d.arg_err()
            action = {"type": kind, key: d.val}
            if kind == "replace":
                if not d.next_arg():
                    raise d.arg_err()
                action["value"] = d.val
            actions.append(action)
    return {"actions": actions} if actions else {}


FILTERS: dict[str, Callable[[Dispenser], dict[str, Any]]] = {
    "delete": _delete,
    "hash": _delete,
    "replace": _one_optional("value"),
    "rename": _one_optional("name"),
    "regexp": _regexp,
    "ip_mask": _ip_mask,
    "query": _actions("parameter"),
    "cookie": _actions("name"),
}


def parse_filter_encoder(d: Dispenser, parse_encoder: Callable[[Dispenser], Encoder]) -> Encoder:
    """``d`` holds ``filter { ... }``; ``parse_encoder`` parses a wrapped encoder
    when ``d`` is at its name token."""
    out: Encoder = {"format": "filter"}
    while d.next():
        while d.next_block(0):
            sub = d.val
            if sub == "wrap":
                if not d.next_arg():
                    raise d.arg_err()
                out["wrap"] = parse_encoder(d)
            elif sub == "fields":
                while d.next_block(1):
                    field = d.val
                    if not d.next_arg():
                        raise d.arg_err()
                    name = d.val
                    parse = FILTERS.get(name)
                    if parse is None:
                        d.fail(unregistered(f"caddy.logging.encoders.filter.{name}"))
                    filt = {"filter": name, **parse(Dispenser(d.next_segment()))}
                    out.setdefault("fields", {})[field] = filt
            else:
                d.fail(f"unrecognized subdirective {sub}")
    return out
