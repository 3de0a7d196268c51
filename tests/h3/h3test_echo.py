"""``h3test_echo``: answers with what arrived: method, proto, body length and SHA-256."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from twisted.web.server import NOT_DONE_YET

from caddytw.http.body import collect
from caddytw.http.dispatch import fail
from caddytw.http.routing import LeafResource


class Echo(LeafResource):
    def render(self, request: Any) -> Any:
        def answer(body: bytes) -> None:
            request.setHeader(b"content-type", b"application/json")
            data = json.dumps(
                {
                    "method": request.method.decode(),
                    "proto": request.proto,
                    "length": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "host": request.request_host,
                }
            ).encode()
            request.setHeader(b"content-length", b"%d" % len(data))
            request.write(data)
            request.finish()

        collect(request.body).addCallbacks(answer, lambda failure: fail(request, failure))
        return NOT_DONE_YET


def build(config: Any, context: Any, next: Any) -> Echo:
    config.done()
    return Echo()
