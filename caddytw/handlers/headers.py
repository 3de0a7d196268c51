"""``headers``: change request headers now, response headers now or when they are sent.

As in Caddy, response operations apply at once unless ``deferred`` is set or a
``require`` matcher is given; then they run just before the headers are written and,
with ``require``, only for a matching status and headers. Deferred operations are
dropped when a later handler fails (the error answer is not this chain's response).
"""

from __future__ import annotations

from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.headerops import HeaderOps, ResponseHeaderOps
from caddytw.http.hooks import before_headers
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource


class HeadersHandler(LeafResource):
    def __init__(
        self, request_ops: HeaderOps | None, response_ops: ResponseHeaderOps | None, next: Handler
    ) -> None:
        self.request_ops = request_ops
        self.response_ops = response_ops
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        if self.request_ops is not None:
            self.request_ops.apply_to_request(request)
        response_ops = self.response_ops
        if response_ops is not None:
            if response_ops.waits:
                before_headers(
                    request,
                    lambda req: response_ops.apply_to_response(req.code, req.responseHeaders, req),
                )
            else:
                response_ops.ops.apply(request.responseHeaders, request)
        return self.next.render(request)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> HeadersHandler:
    request_data = config.raw("request")
    response_data = config.raw("response")
    config.done()
    request_ops = (
        HeaderOps.parse(request_data, config.at("request")) if request_data is not None else None
    )
    response_ops = (
        ResponseHeaderOps.parse(response_data, config.at("response"))
        if response_data is not None
        else None
    )
    return HeadersHandler(request_ops, response_ops, next)
