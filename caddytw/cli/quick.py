"""``file-server``, ``reverse-proxy`` and ``respond``: a whole server from flags.

Each builds the JSON config Caddy's command builds (Caddy 2.6.2: server
``static``/``proxy``, admin endpoint disabled, the same timeouts) and runs
it like ``caddytw run``.  One deliberate difference: ``reverse-proxy --from``
with an IP literal host (``http://127.0.0.1:8080``) binds to that IP where
Caddy binds every interface, so a loopback-only proxy stays loopback-only.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from .process import serve

HTTP_PORT, HTTPS_PORT = "80", "443"


class FlagError(ValueError):
    """A flag value Caddy would reject too (exit 1 with its message)."""


def _app(name: str, server: dict[str, Any], access_log: bool) -> dict[str, Any]:
    if access_log:
        server["logs"] = {}
    return {"admin": {"disabled": True}, "apps": {"http": {"servers": {name: server}}}}


def file_server_config(args: argparse.Namespace) -> dict[str, Any]:
    handler: dict[str, Any] = {"handler": "file_server"}
    if args.root:
        handler["root"] = args.root
    if args.browse:
        handler["browse"] = {}
    handlers: list[dict[str, Any]] = []
    if args.templates:
        handlers.append({"handler": "templates", **({"file_root": args.root} if args.root else {})})
    route: dict[str, Any] = {"handle": [*handlers, handler]}
    if args.domain:
        route["match"] = [{"host": [args.domain]}]
    listen = args.listen or (f":{HTTPS_PORT}" if args.domain else f":{HTTP_PORT}")
    server = {
        "listen": [listen],
        "read_header_timeout": "10s",
        "idle_timeout": "30s",
        "max_header_bytes": 10240,
        "routes": [route],
    }
    return _app("static", server, args.access_log)


def upstream_dial(text: str) -> tuple[str, str]:
    """``--to`` as (scheme, dial address): ``http://h`` -> ``h:80``, ``:9000`` kept."""
    scheme = ""
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme not in ("http", "https", "h2c"):
            raise FlagError(f"invalid upstream address {scheme}://{text}: unsupported scheme")
        text = text.rstrip("/")
        if "/" in text:
            raise FlagError(f"invalid upstream address {text}: paths are not allowed")
    if text.startswith("unix/"):
        return scheme, text
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, {"https": HTTPS_PORT}.get(scheme, HTTP_PORT)
    if not port.isdigit():
        raise FlagError(f"invalid upstream address {text}: bad port")
    return scheme, f"{host}:{port}"


def reverse_proxy_config(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The config and the ``from`` URL Caddy prints."""
    # The Caddyfile package (its whole adapter) is imported by this command only.
    from caddytw.caddyfile.addresses import AddressError, parse_address

    if not args.to:
        raise FlagError("--to is required")
    try:
        source = parse_address(args.from_)
    except AddressError as error:
        raise FlagError(f"invalid downstream address {args.from_}: {error}") from None
    if source.path:
        raise FlagError(f"paths are not allowed: {args.from_}")
    scheme = source.scheme or ("http" if source.port == HTTP_PORT or not source.host else "https")
    port = source.port or (HTTP_PORT if scheme == "http" else HTTPS_PORT)
    dials = [upstream_dial(to) for to in args.to]
    to_scheme = next((s for s, _ in dials if s), "")
    transport: dict[str, Any] = {"protocol": "http"}
    if to_scheme == "https":
        transport["tls"] = {"insecure_skip_verify": True} if args.insecure else {}
    elif to_scheme == "h2c":
        transport["versions"] = ["h2c", "2"]
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "transport": transport,
        "upstreams": [{"dial": dial} for _, dial in dials],
    }
    if args.change_host_header:
        handler["headers"] = {
            "request": {"set": {"Host": ["{http.reverse_proxy.upstream.hostport}"]}}
        }
    route: dict[str, Any] = {"handle": [handler]}
    if source.host:
        route["match"] = [{"host": [source.host]}]
    server: dict[str, Any] = {"listen": [f"{_bind_host(source.host)}:{port}"], "routes": [route]}
    if scheme == "http":
        server["automatic_https"] = {"disable": True}
    config = _app("proxy", server, args.access_log)
    if args.internal_certs and source.host:
        config["apps"]["tls"] = {
            "automation": {
                "policies": [{"subjects": [source.host], "issuers": [{"module": "internal"}]}]
            }
        }
    return config, f"{scheme}://{source.host}:{port}"


def _bind_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ""
    return f"[{address}]" if address.version == 6 else str(address)


def respond_config(args: argparse.Namespace) -> dict[str, Any]:
    body = args.body
    status = args.status
    if args.body_arg is not None:
        # Caddy's positional argument: a 3-digit status code, else the body.
        if len(args.body_arg) == 3 and args.body_arg.isdigit():
            status = int(args.body_arg)
        elif body is None:
            body = args.body_arg
    if body is None and not sys.stdin.isatty():
        body = sys.stdin.read()
    handler: dict[str, Any] = {"handler": "static_response", "status_code": status}
    if body:
        handler["body"] = body
    headers: dict[str, list[str]] = {}
    for index, header in enumerate(args.header):
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise FlagError(f'header {index}: invalid format "{header}" (expecting "Field: value")')
        headers.setdefault(name.strip(), []).append(value.strip())
    if headers:
        handler["headers"] = headers
    listen = args.listen or ":0"
    server = {
        "listen": [listen],
        "routes": [{"handle": [handler]}],
        "automatic_https": {"disable": True},
    }
    return _app("static", server, args.access_log)


def _run(build: Any, args: argparse.Namespace) -> int:
    try:
        result = build(args)
    except FlagError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    config, message = result if isinstance(result, tuple) else (result, "")
    if message:
        print(f"Caddy proxying {message} -> {', '.join(args.to)}", file=sys.stderr)
    return serve(config)


def cmd_file_server(args: argparse.Namespace) -> int:
    if args.root and not os.path.isdir(args.root):
        print(f"Error: root {args.root} is not a directory", file=sys.stderr)
        return 1
    return _run(file_server_config, args)


def cmd_reverse_proxy(args: argparse.Namespace) -> int:
    return _run(reverse_proxy_config, args)


def cmd_respond(args: argparse.Namespace) -> int:
    return _run(respond_config, args)
