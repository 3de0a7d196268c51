"""``php_fastcgi``: Caddy's expansion into redirect, try-files rewrite and a
``reverse_proxy`` with the ``fastcgi`` transport (Caddy 2.6.2's output).

The PHP-specific subdirectives are taken off the token stream; what remains
is parsed as an ordinary ``reverse_proxy`` block, so every proxy option
(load balancing, health checks, ``handle_response``...) works here too.
"""

from __future__ import annotations

from typing import Any

from ..dispenser import Dispenser
from .registry import ConfigValue, Helper, Subroute, directive
from .reverse_proxy import FASTCGI_TIMEOUTS, build_reverse_proxy, fastcgi_timeout
from .wrapping import take_args


class _Options:
    def __init__(self) -> None:
        self.transport: dict[str, Any] = {}
        self.extensions = [".php"]
        self.index = "index.php"
        self.try_files: list[str] = []


def _extract_options(d: Dispenser) -> _Options:
    o = _Options()
    while d.next():
        while d.next_block(0):
            if d.nesting != 1:
                continue
            sub = d.val
            if sub == "root" or sub in FASTCGI_TIMEOUTS:
                if not d.next_arg():
                    raise d.arg_err()
                o.transport[sub] = d.val if sub == "root" else fastcgi_timeout(d)
                d.delete()
                d.delete()
            elif sub == "split":
                o.extensions = take_args(d)
                if not o.extensions:
                    raise d.arg_err()
            elif sub == "env":
                args = take_args(d)
                if len(args) != 2:
                    raise d.arg_err()
                o.transport.setdefault("env", {})[args[0]] = args[1]
            elif sub == "index":
                args = take_args(d)
                if len(args) != 1:
                    raise d.arg_err()
                o.index = args[0]
            elif sub == "try_files":
                o.try_files = take_args(d)
                if not o.try_files:
                    raise d.arg_err()
            elif sub in ("resolve_root_symlink", "capture_stderr"):
                take_args(d)
                o.transport[sub] = True
    d.reset()
    return o


@directive("php_fastcgi")
def parse_php_fastcgi(h: Helper) -> list[ConfigValue]:
    d = h.d
    if not d.next():
        raise d.arg_err()
    user_matcher = h.extract_matcher_set()
    rest = Dispenser(d.next_segment())
    o = _extract_options(rest)
    transport = {"protocol": "fastcgi", **o.transport, "split_path": o.extensions}
    routes: list[dict[str, Any]] = []
    if o.index != "off":
        redirect = {
            "match": [
                {
                    "file": {"try_files": ["{http.request.uri.path}/" + o.index]},
                    "not": [{"path": ["*/"]}],
                }
            ],
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": 308,
                    "headers": {"Location": ["{http.request.orig_uri.path}/"]},
                }
            ],
        }
        tries = o.try_files or [
            "{http.request.uri.path}",
            "{http.request.uri.path}/" + o.index,
            o.index,
        ]
        rewrite = {
            "match": [{"file": {"try_files": tries, "split_path": o.extensions}}],
            "handle": [{"handler": "rewrite", "uri": "{http.matchers.file.relative}"}],
        }
        routes += [redirect, rewrite]
    proxy = build_reverse_proxy(h.with_dispenser(rest), {"transport": transport})
    routes.append({"match": [{"path": ["*" + ext for ext in o.extensions]}], "handle": [proxy]})
    subroute = {"handler": "subroute", "routes": routes}
    if user_matcher is not None:
        return [ConfigValue("route", {"match": [user_matcher], "handle": [subroute]})]
    # Without a matcher Caddy returns the Subroute itself: its routes are merged
    # into the enclosing block's.
    return [ConfigValue("route", Subroute(routes=routes))]
