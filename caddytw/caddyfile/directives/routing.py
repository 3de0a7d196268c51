"""Directives that nest other directives: ``handle``, ``handle_path``,
``route``, ``handle_errors``."""

from __future__ import annotations

from .registry import (
    ConfigValue,
    Handler,
    Helper,
    Subroute,
    directive,
    handler_directive,
    parse_segment_as_config,
    parse_segment_as_subroute,
)


@handler_directive("handle")
def parse_handle(h: Helper) -> Handler:
    """Mutually exclusive block: sorted like a site block, grouped by Caddy."""
    return parse_segment_as_subroute(h).to_handler()


@handler_directive("route")
def parse_route(h: Helper) -> Handler:
    """Block whose directives run in the order written (no sorting)."""
    sub = Subroute()
    for result in parse_segment_as_config(h):
        if isinstance(result.value, Subroute):
            sub.routes.extend(result.value.routes)
        elif isinstance(result.value, dict) and result.cls == "route":
            sub.routes.append(result.value)
        else:
            h.d.fail(
                f"{result.directive} directive returned something other than an HTTP route "
                "or subroute (only handler directives can be used in routes)"
            )
    return sub.to_handler()


@directive("handle_path")
def parse_handle_path(h: Helper) -> list[ConfigValue]:
    """``handle`` for a path prefix that is stripped before the inner routes."""
    d = h.d
    if not d.next() or not d.next_arg():
        raise d.arg_err()
    path = d.val
    if not path.startswith("/"):
        d.fail(f"path matcher must begin with '/', got {path}")
    if path.endswith("/*"):
        strip = path[:-2]
    elif path.endswith("*"):
        strip = path[:-1]
    else:
        strip = path
    d.reset()
    d.next()
    sub = parse_segment_as_subroute(h)
    strip_route = {"handle": [{"handler": "rewrite", "strip_path_prefix": strip}]}
    sub.routes = [strip_route, *sub.routes]
    return h.new_route({"path": [path]}, sub.to_handler())


@directive("handle_errors")
def parse_handle_errors(h: Helper) -> list[ConfigValue]:
    return [ConfigValue("error_route", parse_segment_as_subroute(h))]
