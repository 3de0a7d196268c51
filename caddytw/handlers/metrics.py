"""``metrics``: the server's Prometheus metrics on a route, as Caddy's handler.

The same registry as the admin endpoint's ``/metrics`` (:mod:`caddytw.admin.metrics`);
OpenMetrics when the client asks for it unless ``disable_openmetrics``, and gzip when
the client accepts it, as Prometheus' Go handler that Caddy uses.
"""

from __future__ import annotations

import gzip

from caddytw.admin import metrics
from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer, respond
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource


class MetricsHandler(LeafResource):
    def __init__(self, disable_openmetrics: bool) -> None:
        self.disable_openmetrics = disable_openmetrics

    def render(self, request: CaddyRequest) -> Answer:
        accept = request.header_text("accept") or ""
        openmetrics = not self.disable_openmetrics and metrics.wants_openmetrics(accept)
        body, content_type = metrics.render(openmetrics)
        request.setHeader(b"content-type", content_type.encode("latin-1"))
        encodings = (request.header_text("accept-encoding") or "").lower()
        if "gzip" in (part.split(";")[0].strip() for part in encodings.split(",")):
            request.setHeader(b"content-encoding", b"gzip")
            body = gzip.compress(body, compresslevel=6)
        return respond(request, body)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> MetricsHandler:
    disable = config.flag("disable_openmetrics")
    config.done()
    return MetricsHandler(disable)
