"""Small handler directives: ``encode``, ``basicauth``/``basic_auth``,
``request_body``; plus the response matchers ``encode`` and
``reverse_proxy`` share."""

from __future__ import annotations

from typing import Any

from ..dispenser import Dispenser
from ..matchers import _header as parse_header_matcher
from ..values import atoi, size_arg
from .registry import Handler, Helper, handler_directive

_ENCODERS = ("gzip", "zstd")


def parse_response_matcher(d: Dispenser, defs: dict[str, dict[str, Any]]) -> None:
    """``@name { status 2xx 404; header Foo bar }`` -> a response matcher."""
    while d.next():
        name = d.val
        if name in defs:
            d.fail(f"matcher is defined more than once: {name}")
        matcher: dict[str, Any] = {}
        nesting = d.nesting
        while d.next_arg() or d.next_block(nesting):
            if d.val == "header":
                headers = parse_header_matcher(Dispenser(d.next_segment()))
                into = matcher.setdefault("headers", {})
                for field, values in headers.items():
                    # a repeated field adds values (Go's Header.Add), absent-ness replaces
                    known = into.get(field)
                    into[field] = None if values is None else (known or []) + values
            elif d.val == "status":
                args = d.remaining_args()
                if not args:
                    raise d.arg_err()
                codes = matcher.setdefault("status_code", [])
                for arg in args:
                    if len(arg) == 3 and arg.endswith("xx"):
                        arg = arg[:1]
                    try:
                        codes.append(atoi(arg))
                    except ValueError as exc:
                        d.fail(f"bad status value '{arg}': {exc}")
            else:
                d.fail(f"unrecognized response matcher {d.val}")
        defs[name] = matcher


@handler_directive("encode")
def parse_encode(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "encode"}
    encodings: dict[str, Any] = {}
    prefer: list[str] = []
    resp_matchers: dict[str, dict[str, Any]] = {}

    def add(name: str, config: dict[str, Any]) -> None:
        if name not in _ENCODERS:
            d.fail(f"finding encoder module '{name}': module not registered: http.encoders.{name}")
        encodings[name] = config
        prefer.append(name)

    while d.next():
        for arg in d.remaining_args():
            add(arg, {})
        while d.next_block(0):
            sub = d.val
            if sub == "minimum_length":
                if not d.next_arg():
                    raise d.arg_err()
                try:
                    out["minimum_length"] = atoi(d.val)
                except ValueError as exc:
                    d.fail(str(exc))
            elif sub == "match":
                parse_response_matcher(Dispenser(d.next_segment()), resp_matchers)
                out["match"] = resp_matchers["match"]
            else:
                # The encoder module takes its whole segment (gzip: an optional
                # level; 2.6.2's zstd ignores whatever it is given).
                if sub not in _ENCODERS:
                    add(sub, {})
                add(sub, _encoder_config(Dispenser(d.next_segment())))
    if encodings:
        out["encodings"] = encodings
    if prefer:
        out["prefer"] = prefer
    return out


def _encoder_config(d: Dispenser) -> dict[str, Any]:
    config: dict[str, Any] = {}
    while d.next():
        if d.val == "gzip" and d.next_arg():
            try:
                config["level"] = atoi(d.val)
            except ValueError as exc:
                d.fail(str(exc))
    return config


@handler_directive("basicauth", "basic_auth")
def parse_basicauth(h: Helper) -> Handler:
    d = h.d
    # Caddy always enables the hash cache for Caddyfile-configured accounts.
    provider: dict[str, Any] = {"hash_cache": {}}
    accounts: list[dict[str, str]] = []
    while d.next():
        args = d.remaining_args()
        if len(args) > 2:
            raise d.arg_err()
        hash_name = args[0] if args else "bcrypt"
        if len(args) == 2:
            provider["realm"] = args[1]
        if hash_name not in ("bcrypt", "scrypt"):
            d.fail(f"unrecognized hash algorithm: {hash_name}")
        provider["hash"] = {"algorithm": hash_name}
        while d.next_block(0):
            username = d.val
            password = d.val if d.next_arg() else ""
            salt = d.val if password and d.next_arg() else ""
            if d.next_arg():
                raise d.arg_err()
            if not username or not password:
                d.fail("username and password cannot be empty or missing")
            account = {"username": username, "password": password}
            if salt:
                account["salt"] = salt
            accounts.append(account)
    if accounts:
        provider["accounts"] = accounts
    return {"handler": "authentication", "providers": {"http_basic": provider}}


@handler_directive("request_body")
def parse_request_body(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "request_body"}
    while d.next():
        if d.next_arg():
            raise d.arg_err()
        while d.next_block(0):
            if d.val == "max_size":
                out["max_size"] = size_arg(d, "max_size")
            else:
                d.fail(f"unrecognized servers option '{d.val}'")
    return out
