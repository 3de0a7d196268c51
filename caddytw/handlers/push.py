"""``push``: HTTP/2 server push, as Caddy 2.6's handler.

On an HTTP/2 request whose client allows push, each configured resource is promised
(``PUSH_PROMISE``) and served on its own stream through the same site, before the
request goes on to the next handler; then, when the response head is written, every
``Link`` field's URI is pushed too, unless it carries ``nopush`` or points elsewhere
(another host). The pushed requests carry a few of the original request's fields
(Caddy's ``safeHeaders``: Accept, Accept-Encoding, Accept-Language, Cache-Control,
User-Agent), ``Caddy-Push: 1`` (so they push nothing themselves), and what the
handler's ``headers`` operations make of them. HTTP/1 and HTTP/3 requests, and clients
that disabled push, pass straight through: push is a hint, never a change in answer.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger
from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path
from caddytw.http.headerops import HeaderOps
from caddytw.http.hooks import before_headers
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource

log = Logger()

PUSH_HEADER = b"caddy-push"
SAFE_HEADERS = (b"accept-encoding", b"accept-language", b"accept", b"cache-control", b"user-agent")
_LINK = re.compile(r"<([^>]*)>([^,]*)")


def parse_links(values: list[str]) -> list[tuple[str, set[str]]]:
    """``Link`` field values as ``(uri, parameter names)`` (Caddy's parseLinkHeader)."""
    links = []
    for value in values:
        for found in _LINK.finditer(value):
            params = {
                p.split("=", 1)[0].strip().lower() for p in found.group(2).split(";") if p.strip()
            }
            links.append((found.group(1).strip(), params))
    return links


def is_remote(uri: str) -> bool:
    """Anything but a path on this host (``//host/x``, ``https://...``) is not pushed."""
    return not uri.startswith("/") or uri.startswith("//")


class PushHandler(LeafResource):
    def __init__(
        self, resources: list[tuple[bytes, Template]], headers: HeaderOps | None, next: Any
    ) -> None:
        self.resources = resources
        self.headers = headers
        self.next = next

    def render(self, request: CaddyRequest) -> Any:
        push = _pusher(request)
        if push is not None and not request.requestHeaders.hasHeader(PUSH_HEADER):
            fields = self._push_fields(request)
            for method, target in self.resources:
                if not push(method, target.render(request) or ".", fields):
                    break  # usually: the client disabled push

            def preload(req: CaddyRequest) -> None:
                links = req.responseHeaders.getRawHeaders(b"link")
                if not links:
                    return
                texts = [link.decode("latin-1") for link in links]
                for uri, params in parse_links(texts):
                    if "nopush" in params or is_remote(uri):
                        continue
                    if not push(b"GET", uri, fields):
                        return

            before_headers(request, preload)
        return self.next.render(request)

    def _push_fields(self, request: CaddyRequest) -> list[tuple[bytes, bytes]]:
        headers = Headers()
        for name in SAFE_HEADERS:
            values = request.requestHeaders.getRawHeaders(name)
            if values:
                headers.setRawHeaders(name, values)
        if self.headers is not None:
            self.headers.apply(headers, request)
        fields = [(PUSH_HEADER, b"1")]
        for name, values in headers.getAllRawHeaders():
            fields.extend((name.lower(), value) for value in values)
        return fields


def _pusher(request: CaddyRequest) -> Any:
    """A ``push(method, target, fields) -> bool`` for an HTTP/2 request, else None."""
    stream: Any = request.channel
    connection: Any = getattr(stream, "_conn", None)
    if request.clientproto != b"HTTP/2" or not hasattr(connection, "push"):
        return None
    authority = request.requestHeaders.getRawHeaders(b"host", [b""])[0]
    scheme = request.scheme.encode("ascii")

    def push(method: bytes, target: str, fields: list[tuple[bytes, bytes]]) -> bool:
        path = target.encode("utf-8")
        if not path.startswith(b"/"):
            return True  # Go's Push refuses a relative target; the others still go
        pseudo = [(b":method", method), (b":scheme", scheme), (b":authority", authority)]
        return bool(connection.push(stream.streamID, [*pseudo, (b":path", path), *fields]))

    return push


def build(config: ObjectReader, context: Any, next: Any) -> PushHandler:
    resources = []
    for index, item in enumerate(config.array("resources")):
        resource = ObjectReader(item, join_path(config.at("resources"), index))
        method = (resource.text("method") or "GET").upper()
        if method not in ("GET", "HEAD"):
            # Go's http.Pusher takes only these (a push must be safe and cacheable).
            raise ConfigError(resource.at("method"), f"cannot push with method {method!r}")
        target = resource.text("target")
        if not target:
            raise ConfigError(resource.at("target"), "a target to push is required")
        resource.done()
        resources.append((method.encode("ascii"), Template(target)))
    headers_data = config.raw("headers")
    config.done()
    headers = HeaderOps.parse(headers_data, config.at("headers")) if headers_data else None
    return PushHandler(resources, headers, next)
