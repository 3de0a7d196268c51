"""``request_body``: refuse bodies over ``max_size`` with 413.

Caddy limits what later handlers may read; twisted.web has already received the whole
body when routing starts (spooled to disk when large), so the size is known exactly and
the answer is given up front, before any later handler runs: a proxy or upload handler
behind this one never sees an oversized body.
"""

from __future__ import annotations

import os
from typing import Any

from caddytw.config.reader import ObjectReader
from caddytw.http.errors import HandlerError
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource

TOO_LARGE = "http: request body too large"


def body_size(request: CaddyRequest) -> int:
    """Bytes in the received body, leaving the read position where it was."""
    content = request.content
    if content is None:
        return 0
    position = content.tell()
    try:
        return content.seek(0, os.SEEK_END)
    finally:
        content.seek(position)


class RequestBody(LeafResource):
    def __init__(self, max_size: int, next: Any) -> None:
        self.max_size = max_size
        self.next = next

    def render(self, request: CaddyRequest) -> Any:
        if self.max_size > 0 and body_size(request) > self.max_size:
            raise HandlerError(413, TOO_LARGE)
        return self.next.render(request)


def build(config: ObjectReader, context: Any, next: Any) -> RequestBody:
    max_size = config.integer("max_size", minimum=0)
    config.done()
    return RequestBody(max_size, next)
