"""The web app behind the ``file_sync_ui`` handler: its files, and the resource that
serves them with a strict Content-Security-Policy.

Every asset ships in ``caddytw/syncui/static`` (plain ES modules and CSS, no build
step) and is read once, when a config first uses the handler. The page holds no data
itself: everything it shows comes from the ``file_sync`` API named by ``api``, which
does all the access checks. So the page can be served to anyone; what they may see and
do is what the API lets their token (or, without tokens, this machine) do.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from caddytw.http.dispatch import respond
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource

#: Served file name -> Content-Type. Only these names are answered (plus ``…/``, the page).
ASSET_TYPES = {
    "index.html": b"text/html; charset=utf-8",
    "app.js": b"text/javascript; charset=utf-8",
    "api.js": b"text/javascript; charset=utf-8",
    "model.js": b"text/javascript; charset=utf-8",
    "format.js": b"text/javascript; charset=utf-8",
    "vlist.js": b"text/javascript; charset=utf-8",
    "uploads.js": b"text/javascript; charset=utf-8",
    "style.css": b"text/css; charset=utf-8",
    "icon.svg": b"image/svg+xml",
}

#: What a Host header may look like to be named in ``connect-src`` (anything else falls
#: back to ``'self'`` alone, which Chromium also applies to same-host WebSockets).
_HOST_RE = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")

#: Headers on every answer: no framing, no sniffing, no referrer leaking folder names.
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-cache"),
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: bytes
    etag: bytes


@cache
def raw_asset(name: str) -> bytes:
    """One shipped file, read from the installed package (works from a wheel too)."""
    return (resources.files(__name__) / "static" / name).read_bytes()


def make_asset(name: str, body: bytes) -> Asset:
    tag = hashlib.sha256(body).hexdigest()[:32]
    return Asset(body, ASSET_TYPES[name], f'"{tag}"'.encode("ascii"))


def csp(host: str | None) -> bytes:
    """The page's policy: its own scripts and styles only, no inline code, no other
    origin, no framing; connections to this host's API and event WebSocket only."""
    connect = "'self'"
    if host is not None and _HOST_RE.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    ).encode("ascii")


class SyncUiResource(LeafResource):
    """Answers ``…/`` with the page and ``…/<asset>`` with one of :data:`ASSET_TYPES`.

    Asset URLs in the page are relative, so the app works under any prefix (``/``,
    ``/files/`` with ``handle_path``) as long as the page's URL ends in ``/``.
    """

    def __init__(self, api: str) -> None:
        self.api = api
        self.assets = {name: make_asset(name, raw_asset(name)) for name in ASSET_TYPES}
        page = raw_asset("index.html").replace(
            b"{{api}}", html.escape(api, quote=True).encode("utf-8")
        )
        self.assets["index.html"] = make_asset("index.html", page)

    def render(self, request: CaddyRequest) -> Any:
        for header, value in COMMON_HEADERS:
            request.setHeader(header, value)
        request.setHeader(b"content-security-policy", csp(request.header_text("Host")))
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self.plain(request, 405, "the file manager's page is read with GET")
        path = request.decoded_path
        name = "index.html" if path.endswith("/") else path.rpartition("/")[2]
        asset = self.assets.get(name)
        if asset is None:
            return self.plain(request, 404, "not a file of the file manager")
        request.setHeader(b"etag", asset.etag)
        request.setHeader(b"content-type", asset.content_type)
        match = request.getHeader(b"if-none-match")
        if match is not None and asset.etag in [t.strip() for t in match.split(b",")]:
            request.setResponseCode(304)
            return respond(request, b"")
        request.setHeader(b"content-length", str(len(asset.body)).encode("ascii"))
        return respond(request, b"" if request.method == b"HEAD" else asset.body)

    @staticmethod
    def plain(request: CaddyRequest, status: int, message: str) -> int:
        body = (message + "\n").encode("utf-8")
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        return respond(request, b"" if request.method == b"HEAD" else body)
