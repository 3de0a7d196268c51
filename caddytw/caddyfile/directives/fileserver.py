"""``file_server``: static files, with the Caddyfile itself always hidden."""

from __future__ import annotations

import os
from typing import Any

from ..values import weak_string
from .registry import Handler, Helper, handler_directive

_PRECOMPRESSED = ("br", "gzip", "zstd")


@handler_directive("file_server")
def parse_file_server(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "file_server"}
    hide: list[str] = []
    while d.next():
        args = d.remaining_args()
        if len(args) == 1:
            if args[0] != "browse":
                raise d.arg_err()
            out["browse"] = {}
        elif args:
            raise d.arg_err()
        while d.next_block(0):
            sub = d.val
            if sub == "hide":
                hide = d.remaining_args()
                if not hide:
                    raise d.arg_err()
            elif sub == "index":
                names = d.remaining_args()
                if not names:
                    raise d.arg_err()
                out["index_names"] = names
            elif sub == "root":
                if not d.next_arg():
                    raise d.arg_err()
                out["root"] = d.val
            elif sub == "browse":
                if "browse" in out:
                    d.fail("browsing is already configured")
                browse: dict[str, Any] = {}
                if d.next_arg():
                    browse["template_file"] = d.val
                out["browse"] = browse
            elif sub == "precompressed":
                order: list[str] = []
                pre: dict[str, Any] = {}
                while d.next_arg():
                    if d.val not in _PRECOMPRESSED:
                        d.fail(
                            f"getting module named 'http.precompressed.{d.val}': module not "
                            f"registered: http.precompressed.{d.val}"
                        )
                    pre[d.val] = {}
                    order.append(d.val)
                if pre:
                    out["precompressed"] = pre
                if order:
                    out["precompressed_order"] = order
            elif sub == "status":
                if not d.next_arg():
                    raise d.arg_err()
                out["status_code"] = weak_string(d.val)
            elif sub == "disable_canonical_uris":
                if d.next_arg():
                    raise d.arg_err()
                out["canonical_uris"] = False
            elif sub == "pass_thru":
                if d.next_arg():
                    raise d.arg_err()
                out["pass_thru"] = True
            else:
                d.fail(f"unknown subdirective '{sub}'")
    for path in h.caddyfiles():
        path = os.path.normpath(path)
        if path not in hide:
            if os.sep not in path:
                path = "." + os.sep + path
            hide.append(path)
    if hide:
        out["hide"] = hide
    return out
