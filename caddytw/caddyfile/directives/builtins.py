"""Caddy's built-in simple handler directives: root, vars, redir, respond,
abort, error, skip_log, map."""

from __future__ import annotations

import html
from typing import Any

from ..placeholders import SHORTHANDS
from ..values import atoi, weak_string
from .registry import Handler, Helper, handler_directive


@handler_directive("root")
def parse_root(h: Helper) -> Handler:
    d = h.d
    root = ""
    while d.next():
        if not d.next_arg():
            raise d.arg_err()
        root = d.val
        if d.next_arg():
            raise d.arg_err()
    return {"handler": "vars", "root": root}


def parse_vars_block(h: Helper) -> dict[str, Any]:
    """``vars [name value] { name value ... }`` with scalar typing."""
    d = h.d
    out: dict[str, Any] = {}

    def next_var(header_line: bool) -> None:
        if header_line and not d.next_arg():
            return
        name = d.val
        if not d.next_arg():
            raise d.arg_err()
        out[name] = d.scalar_val()
        if d.next_arg():
            raise d.arg_err()

    while d.next():
        next_var(True)
        nesting = d.nesting
        while d.next_block(nesting):
            next_var(False)
    return out


@handler_directive("vars")
def parse_vars(h: Helper) -> Handler:
    return {"handler": "vars", **parse_vars_block(h)}


_META_REDIR = """<!DOCTYPE html>
<html>
	<head>
		<title>Redirecting...</title>
		<script>window.location.replace("{0}");</script>
		<meta http-equiv="refresh" content="0; URL='{0}'">
	</head>
	<body>Redirecting to <a href="{0}">{0}</a>...</body>
</html>
"""


def _go_html_escape(text: str) -> str:
    """Go's ``html.EscapeString`` (``'`` -> ``&#39;``, ``"`` -> ``&#34;``)."""
    return html.escape(text, quote=False).replace("'", "&#39;").replace('"', "&#34;")


@handler_directive("redir")
def parse_redir(h: Helper) -> Handler:
    d = h.d
    if not d.next() or not d.next_arg():
        raise d.arg_err()
    to = d.val
    code = d.val if d.next_arg() else ""
    body = ""
    if code == "permanent":
        code = "301"
    elif code in ("temporary", ""):
        code = "302"
    elif code == "html":
        body = _META_REDIR.format(_go_html_escape(to))
        code = "200"
    elif not code.startswith("{"):
        try:
            num = atoi(code)
        except ValueError:
            d.fail(f"Not a supported redir code type or not valid integer: '{code}'")
        if num < 300 or (num > 399 and num != 401):
            d.fail(f"Redir code not in the 3xx range or 401: '{num}'")
    out: Handler = {"handler": "static_response", "status_code": weak_string(code)}
    if code != "200":
        out["headers"] = {"Location": [to]}
    if body:
        out["body"] = body
    return out


def _positive_int(text: str) -> bool:
    try:
        return atoi(text) > 0
    except ValueError:
        return False


def _status_or_text(d: Any, text_key: str, out: Handler) -> None:
    args = d.remaining_args()
    if len(args) == 1:
        arg = args[0]
        if len(arg) == 3 and _positive_int(arg):
            out["status_code"] = weak_string(arg)
        else:
            out[text_key] = arg
    elif len(args) == 2:
        out[text_key] = args[0]
        out["status_code"] = weak_string(args[1])
    else:
        raise d.arg_err()


def _text_once(d: Any, out: Handler, key: str, name: str) -> None:
    """``name <text>`` inside the block sets ``key``, at most once (as Caddy says it)."""
    if out.get(key):
        d.fail(f"{name} already specified")
    args = d.all_args(1)
    if args is None:
        raise d.arg_err()
    out[key] = args[0]


def _status_and_text(
    h: Helper, handler: str, text_key: str, text_name: str, flags: tuple[str, ...] = ()
) -> Handler:
    """``respond`` and ``error`` read alike: ``[<text>] [<status>]``, then a block that
    may give the text (``text_name``) once and set ``flags``; an empty text is left out."""
    d = h.d
    out: Handler = {"handler": handler}
    while d.next():
        _status_or_text(d, text_key, out)
        while d.next_block(0):
            if d.val == text_name:
                _text_once(d, out, text_key, text_name)
            elif d.val in flags:
                if out.get(d.val):
                    d.fail(f"{d.val} already specified")
                out[d.val] = True
            else:
                d.fail(f"unrecognized subdirective '{d.val}'")
    if out.get(text_key) == "":
        del out[text_key]
    return out


@handler_directive("respond")
def parse_respond(h: Helper) -> Handler:
    return _status_and_text(h, "static_response", "body", "body", flags=("close",))


@handler_directive("error")
def parse_error(h: Helper) -> Handler:
    return _status_and_text(h, "error", "error", "message")


@handler_directive("abort")
def parse_abort(h: Helper) -> Handler:
    d = h.d
    d.next()
    if d.next() or d.next_block(0):
        raise d.arg_err()
    return {"handler": "static_response", "abort": True}


@handler_directive("skip_log")
def parse_skip_log(h: Helper) -> Handler:
    d = h.d
    while d.next():
        if d.next_arg():
            raise d.arg_err()
    return {"handler": "vars", "skip_log": True}


@handler_directive("map")
def parse_map(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "map"}
    dests: list[str] = []
    mappings: list[dict[str, Any]] = []
    defaults: list[str] = []
    reverse = {v: k for k, v in SHORTHANDS.items()}
    while d.next():
        if not d.next_arg():
            raise d.arg_err()
        out["source"] = d.val
        dests = d.remaining_args()
        if not dests:
            d.fail("missing destination argument(s)")
        for dest in dests:
            shorthand = reverse.get("{" + dest.strip("{}") + "}")
            if shorthand:
                d.fail(f"destination {shorthand} conflicts with a Caddyfile placeholder shorthand")
        while d.next_block(0):
            if d.val == "default":
                if defaults:
                    d.fail("defaults already defined")
                defaults = d.remaining_args()
                defaults += [""] * (len(dests) - len(defaults))
                continue
            key = d.val
            outs: list[Any] = []
            while d.next_arg():
                val = d.scalar_val()
                outs.append(None if val == "-" else val)
            if len(outs) > len(dests):
                d.fail("too many outputs")
            outs += [None] * (len(dests) - len(outs))
            mapping: dict[str, Any] = {"outputs": outs}
            if key.startswith("~"):
                mapping["input_regexp"] = key[1:]
            else:
                mapping["input"] = key
            mappings.append(mapping)
    out["destinations"] = dests
    if mappings:
        out["mappings"] = mappings
    if defaults:
        out["defaults"] = defaults
    return out
