"""``forward_auth``: Caddy's expansion into a ``reverse_proxy`` that asks an
auth service with a GET (original method and URI in ``X-Forwarded-*``) and,
on a 2xx answer, copies the chosen response headers into the request and
carries on; any other answer goes back to the client (Caddy 2.6.2's output).
"""

from __future__ import annotations

from typing import Any

from ..dispenser import Dispenser
from .registry import ConfigValue, Helper, directive
from .reverse_proxy import build_reverse_proxy


def canonical_header(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey`` for the names a Caddyfile can hold."""
    if not name or any(c in name for c in " \t:"):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _extract(d: Dispenser) -> tuple[str, dict[str, str]]:
    uri = ""
    copies: dict[str, str] = {}
    while d.next():
        while d.next_block(0):
            if d.nesting != 1:
                continue
            if d.val == "uri":
                if not d.next_arg():
                    raise d.arg_err()
                uri = d.val
                d.delete()
                d.delete()
            elif d.val == "copy_headers":
                args = d.remaining_args()
                had_block = False
                nesting = d.nesting
                while d.next_block(nesting):
                    had_block = True
                    args.append(d.val)
                d.delete()
                if had_block:
                    d.delete()
                    d.delete()
                for _ in args:
                    d.delete()
                for field in args:
                    source, _, target = field.partition(">")
                    copies[source] = target if ">" in field else field
                if not copies:
                    raise d.arg_err()
    d.reset()
    if not uri:
        d.fail("the 'uri' subdirective is required")
    return uri, copies


@directive("forward_auth")
def parse_forward_auth(h: Helper) -> list[ConfigValue]:
    d = h.d
    if not d.next():
        raise d.arg_err()
    user_matcher = h.extract_matcher_set()
    rest = Dispenser(d.next_segment())
    uri, copies = _extract(rest)
    request_set = {
        canonical_header(target): ["{http.reverse_proxy.header." + canonical_header(source) + "}"]
        for source, target in copies.items()
    }
    copy_handler: dict[str, Any] = {"handler": "headers", "request": {}}
    if request_set:
        copy_handler["request"]["set"] = request_set
    preset: dict[str, Any] = {
        "headers": {
            "request": {
                "set": {
                    "X-Forwarded-Method": ["{http.request.method}"],
                    "X-Forwarded-Uri": ["{http.request.uri}"],
                }
            }
        },
        "rewrite": {"method": "GET", "uri": uri},
        "handle_response": [
            {"match": {"status_code": [2]}, "routes": [{"handle": [copy_handler]}]}
        ],
    }
    proxy = build_reverse_proxy(h.with_dispenser(rest), preset)
    route: dict[str, Any] = {"handle": [proxy]}
    if user_matcher is not None:
        route["match"] = [user_matcher]
    return [ConfigValue("route", route)]
