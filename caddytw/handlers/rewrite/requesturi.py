"""The request target as Go's ``url.URL`` sees it, for handlers that rewrite it.

Caddy's rewrites work on ``EscapedPath()`` (the path as sent, escapes kept) and
``RawQuery``; these helpers read those from a :class:`CaddyRequest` and write a new
target back through ``request.set_uri`` (Go's ``RequestURI``: an empty path is ``/``).
"""

from __future__ import annotations

from collections.abc import Callable

from caddytw.http.gourl import escape_path, unescape_path
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest


def as_raw(text: str) -> str:
    """Config text in the form raw URI parts have here: each char one byte (latin-1),
    the bytes being the text's UTF-8, as Go's strings are."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def escaped_path(request: CaddyRequest) -> str:
    """``URL.EscapedPath()``: the path as the client (or the last rewrite) spelled it."""
    return request.path.decode("latin-1")


def raw_query(request: CaddyRequest) -> str:
    return request.uri.partition(b"?")[2].decode("latin-1")


def store_uri(request: CaddyRequest, path: str, query: str) -> None:
    """Set the request target from an escaped path and a raw query (Go's RequestURI)."""
    target = (path or "/") + ("?" + query if query else "")
    request.set_uri(target.encode("latin-1", "replace"))


def change_path(request: CaddyRequest, change: Callable[[str], str]) -> None:
    """Caddy's ``changePath``: apply ``change`` to the escaped path; when the result does
    not decode, apply it to the decoded path instead and escape that."""
    new_raw = change(escaped_path(request))
    decoded = unescape_path(new_raw)
    if decoded is None or decoded == "":
        path = escape_path(change(request.decoded_path))
    else:
        path = new_raw
    store_uri(request, path, raw_query(request))


def fill(template: Template, request: CaddyRequest) -> str:
    """Fill a template as Caddy's ``ReplaceAll`` (unknown placeholders become empty)."""
    return template.constant if template.constant is not None else template.render(request)
