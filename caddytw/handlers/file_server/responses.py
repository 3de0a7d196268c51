"""Small HTTP answers shared by the file and listing paths: headers-only, redirects."""

from __future__ import annotations

import os
from html import escape
from urllib.parse import quote

from caddytw.http.dispatch import Answer
from caddytw.http.request import NOT_DONE_YET, CaddyRequest, decode_path

ALLOWED_METHODS = (b"GET", b"HEAD")
# Go's URL path escaping keeps these besides letters, digits and "-_.~".
_LOCATION_SAFE = "/$&+,:;=@"


def original_path(request: CaddyRequest) -> str:
    """The decoded path the client asked for, before any rewrite."""
    return decode_path(request.original_uri.partition(b"?")[0] or b"/")


def redirect(request: CaddyRequest, target: str) -> Answer:
    """308 to ``target`` (a decoded path), keeping the query, as Go's ``http.Redirect``."""
    while target.startswith("//"):
        target = target[1:]  # never a scheme-relative (open) redirect
    location = quote(os.fsencode(target), safe=_LOCATION_SAFE)
    query = request.original_uri.partition(b"?")[2]
    if query:
        location += "?" + query.decode("latin-1")
    request.setResponseCode(308)
    request.setHeader(b"location", location.encode("latin-1"))
    if request.method not in ALLOWED_METHODS:
        return finish_with(request, b"")
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    body = f'<a href="{escape(location)}">Permanent Redirect</a>.\n\n'.encode()
    return finish_with(request, body)


def finish_with(request: CaddyRequest, body: bytes, *, length: int | None = None) -> Answer:
    """Answer with ``body`` (or only headers declaring ``length``, for HEAD and 304)."""
    if request.client_gone:
        return NOT_DONE_YET
    if request.code not in (204, 304):
        # Straight into the Headers' dict (twisted's canonical name): setHeader's
        # encoding and checks are wasted on a number.
        size = len(body) if length is None else length
        request.responseHeaders._rawHeaders[b"Content-Length"] = [b"%d" % size]
    request.write(body)
    request.finish()
    return NOT_DONE_YET
