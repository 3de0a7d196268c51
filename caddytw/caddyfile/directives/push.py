"""``push`` (HTTP/2 server push) and ``metrics``: handlers whose Caddyfile
syntax we adapt exactly, whether or not the runtime has them (``validate``
says which)."""

from __future__ import annotations

from typing import Any

from .headers import HeaderOpError, apply_header_op
from .registry import Handler, Helper, handler_directive


@handler_directive("push")
def parse_push(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "push"}
    resources: list[dict[str, str]] = []
    while d.next():
        if d.next_arg():
            resources.append({"target": d.val})
        outer = d.nesting
        while d.next_block(outer):
            sub = d.val
            if sub == "headers":
                if d.next_arg():
                    raise d.arg_err()
                inner = d.nesting
                while d.next_block(inner):
                    args = [d.val, *d.remaining_args()]
                    if len(args) > 3:
                        raise d.arg_err()
                    ops: dict[str, Any] = out.setdefault("headers", {})
                    try:
                        apply_header_op(ops, None, *[*args, "", ""][:3])
                    except HeaderOpError as exc:
                        d.fail(str(exc))
            elif sub in ("GET", "HEAD"):
                if not d.next_arg():
                    raise d.arg_err()
                resources.append({"method": sub, "target": d.val})
            else:
                resources.append({"target": sub})
    if resources:
        out["resources"] = resources
    return out


@handler_directive("metrics")
def parse_metrics(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "metrics"}
    while d.next():
        if d.remaining_args():
            raise d.arg_err()
        while d.next_block(0):
            if d.val != "disable_openmetrics":
                d.fail(f'unrecognized subdirective "{d.val}"')
            out["disable_openmetrics"] = True
    return out
