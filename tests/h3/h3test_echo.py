"""``h3test_echo``: answers with what arrived: method, proto, body length and SHA-256."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from caddytw.http.routing import LeafResource


class Echo(LeafResource):
    def render(self, request: Any) -> bytes:
        body = request.content.read() if request.content is not None else b""
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {
                "method": request.method.decode(),
                "proto": request.proto,
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "host": request.request_host,
            }
        ).encode()


def build(config: Any, context: Any, next: Any) -> Echo:
    config.done()
    return Echo()
