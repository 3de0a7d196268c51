"""``request_body``: refuse bodies over ``max_size`` with 413.

As Caddy's ``MaxBytesReader``, the limit applies to what later handlers read: the body
arrives as it is read (:mod:`caddytw.http.body`), and reading stops at ``max_size`` with
413 (:class:`~caddytw.http.body.BodyTooLarge`, answered by
:func:`caddytw.http.dispatch.fail`). A body whose Content-Length is already over the
limit is refused before any later handler runs, without reading a byte of it.
"""

from __future__ import annotations

from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.errors import HandlerError
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource

TOO_LARGE = "http: request body too large"


class RequestBody(LeafResource):
    def __init__(self, max_size: int, next: Handler) -> None:
        self.max_size = max_size
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        if self.max_size > 0:
            body = request.body
            body.limit_to(self.max_size)
            if body.error is not None:
                raise HandlerError(413, TOO_LARGE)
        return self.next.render(request)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> RequestBody:
    max_size = config.integer("max_size", minimum=0)
    config.done()
    return RequestBody(max_size, next)
