"""Caddy's ``{placeholder}`` syntax, compiled once and rendered per request.

Handler fields are templates such as ``"Hello {http.request.host}"``. Compiling splits
them into literal and placeholder parts at config time, so a request only looks values up.
``\\{`` and ``\\}`` escape braces, as in Caddy's replacer.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from caddytw.http.dates import date_now
from caddytw.http.errors import status_text

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest

Lookup = Callable[["CaddyRequest"], "str | None"]


def _error_field(get: Callable[[object], object]) -> Lookup:
    def lookup(request: CaddyRequest) -> str | None:
        info = request.caddy_error
        return None if info is None else str(get(info))

    return lookup


def _local_port(request: CaddyRequest) -> str:
    return str(getattr(request.getHost(), "port", ""))


def _local_host(request: CaddyRequest) -> str:
    return str(getattr(request.getHost(), "host", ""))


def _remote(request: CaddyRequest) -> str:
    host = request.remote_host
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{request.remote_port}"


def _path_file(request: CaddyRequest) -> str:
    return PurePosixPath(request.decoded_path).name


def _path_dir(request: CaddyRequest) -> str:
    path = request.decoded_path
    return path[: path.rfind("/") + 1] if "/" in path else "/"


_STATIC: dict[str, Lookup] = {
    "http.request.host": lambda r: r.request_host,
    "http.request.hostport": lambda r: r.request_hostport,
    "http.request.port": lambda r: _local_port(r),
    "http.request.method": lambda r: r.method.decode("latin-1"),
    "http.request.orig_method": lambda r: r.original_method.decode("latin-1"),
    "http.request.uri": lambda r: r.uri.decode("latin-1"),
    "http.request.orig_uri": lambda r: r.original_uri.decode("latin-1"),
    "http.request.orig_uri.path": lambda r: r.original_uri.partition(b"?")[0].decode("latin-1"),
    "http.request.orig_uri.query": lambda r: r.original_uri.partition(b"?")[2].decode("latin-1"),
    "http.request.uri.path": lambda r: r.decoded_path,
    "http.request.uri.path.file": _path_file,
    "http.request.uri.path.dir": _path_dir,
    "http.request.uri.path.file.base": lambda r: PurePosixPath(_path_file(r)).stem,
    "http.request.uri.path.file.ext": lambda r: PurePosixPath(_path_file(r)).suffix,
    "http.request.uri.query": lambda r: r.query_string,
    "http.request.scheme": lambda r: r.scheme,
    "http.request.proto": lambda r: r.proto,
    "http.request.remote": _remote,
    "http.request.remote.host": lambda r: r.remote_host,
    "http.request.remote.port": lambda r: str(r.remote_port),
    "http.request.local": lambda r: f"{_local_host(r)}:{_local_port(r)}",
    "http.request.local.host": _local_host,
    "http.request.local.port": _local_port,
    "http.request.duration": lambda r: f"{time.time() - r.started_at:.6f}s",
    "http.request.duration_ms": lambda r: f"{(time.time() - r.started_at) * 1000:.3f}",
    "http.error.status_code": _error_field(lambda e: e.status),  # type: ignore[attr-defined]
    "http.error.status_text": _error_field(lambda e: status_text(e.status)),  # type: ignore[attr-defined]
    "http.error.message": _error_field(lambda e: e.message),  # type: ignore[attr-defined]
    "http.error.id": _error_field(lambda e: e.error_id),  # type: ignore[attr-defined]
    "http.error.trace": _error_field(lambda e: e.trace),  # type: ignore[attr-defined]
    "system.hostname": lambda r: socket.gethostname(),
    "system.os": lambda r: "linux",
    "time.now": lambda r: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "time.now.unix": lambda r: str(int(time.time())),
    "time.now.unix_ms": lambda r: str(int(time.time() * 1000)),
    "time.now.http": lambda r: date_now().decode("ascii"),
    "time.now.common_log": lambda r: time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
    "time.now.year": lambda r: time.strftime("%Y", time.gmtime()),
}


def _prefixed(request: CaddyRequest, key: str) -> str | None:
    """Placeholders with a variable suffix: headers, cookies, query keys, path parts, vars."""
    if key.startswith("http.request.header."):
        # A header placeholder is always known: an absent header is empty, as in Caddy.
        return request.header_text(key[len("http.request.header.") :]) or ""
    if key.startswith("http.request.cookie."):
        cookie = request.getCookie(key[len("http.request.cookie.") :].encode("latin-1"))
        return None if cookie is None else cookie.decode("latin-1")
    if key.startswith("http.request.uri.query."):
        name = key[len("http.request.uri.query.") :]
        values = parse_qs(request.query_string, keep_blank_values=True).get(name)
        return values[0] if values else ""
    if key.startswith("http.request.uri.path."):
        index = key[len("http.request.uri.path.") :]
        if index.isdigit():
            parts = request.decoded_path.strip("/").split("/")
            position = int(index)
            return parts[position] if position < len(parts) else ""
        return None
    if key.startswith("http.vars."):
        # Variables are dynamic, so Caddy treats every one as known (unset is empty).
        value = request.caddy_vars.get(key[len("http.vars.") :])
        return "" if value is None else str(value)
    if key.startswith("env."):
        return os.environ.get(key[4:], "")
    if key.startswith("http.request.tls."):
        return ""
    return None


def resolve(request: CaddyRequest, key: str) -> str | None:
    """The value of one placeholder for this request, or None when the key is unknown."""
    value = request.placeholder_values.get(key)
    if value is not None:
        return value
    for provider in request.placeholder_providers:
        value = provider(request, key)
        if value is not None:
            return value
    lookup = _STATIC.get(key)
    if lookup is not None:
        return lookup(request)
    if key in request.caddy_vars:
        return str(request.caddy_vars[key])
    return _prefixed(request, key)


def header_value(text: str) -> bytes:
    """A rendered header value as bytes. Placeholders from the request's own bytes are
    Latin-1 strings and go back unchanged; a value Latin-1 cannot hold (a decoded UTF-8
    path or query) goes out as UTF-8, as Caddy writes Go strings, never an error."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def split_template(text: str) -> list[tuple[bool, str]]:
    """Split a template into ``(is_placeholder, text)`` parts, honouring ``\\{`` escapes."""
    parts: list[tuple[bool, str]] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in "{}":
            literal.append(text[index + 1])
            index += 2
            continue
        if char == "{":
            end = text.find("}", index + 1)
            if end != -1 and end > index + 1 and "{" not in text[index + 1 : end]:
                if literal:
                    parts.append((False, "".join(literal)))
                    literal = []
                parts.append((True, text[index + 1 : end]))
                index = end + 1
                continue
        literal.append(char)
        index += 1
    if literal:
        parts.append((False, "".join(literal)))
    return parts


class Template:
    """A string with placeholders, compiled once; ``render`` fills it for a request."""

    __slots__ = ("constant", "parts", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts = split_template(source)
        has_placeholder = any(is_key for is_key, _ in self.parts)
        self.constant = None if has_placeholder else "".join(text for _, text in self.parts)

    def render(self, request: CaddyRequest, *, known_only: bool = False) -> str:
        """Fill in placeholders; unknown ones become empty, or stay as written when
        ``known_only`` (Caddy's ``ReplaceKnown``, used for response bodies)."""
        if self.constant is not None:
            return self.constant
        out: list[str] = []
        for is_key, text in self.parts:
            if not is_key:
                out.append(text)
                continue
            value = resolve(request, text)
            if value is None:
                out.append("{" + text + "}" if known_only else "")
            else:
                out.append(value)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"
