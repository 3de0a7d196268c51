"""``subroute``: a nested route list with its own error routes, then the outer ``next``."""

from __future__ import annotations

from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import ErrorStatusResponse, LeafResource, RouteList


class _LeaveSubroute(LeafResource):
    """Continue with the handler after the subroute, leaving its error scope."""

    def __init__(self, next: Handler, errors: RouteList | None) -> None:
        self.next = next
        self.errors = errors

    def render(self, request: CaddyRequest) -> Answer:
        if self.errors is not None and request.error_scopes[-1:] == [self.errors]:
            request.error_scopes.pop()
        return self.next.render(request)


class Subroute(LeafResource):
    def __init__(self, routes: RouteList, errors: RouteList | None) -> None:
        self.routes = routes
        self.errors = errors

    def render(self, request: CaddyRequest) -> Answer:
        if self.errors is not None:
            request.error_scopes.append(self.errors)
        return self.routes.render(request)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> Subroute:
    errors_reader = config.reader("errors")
    error_routes_data = errors_reader.raw("routes")
    errors_reader.done()
    errors = (
        context.build_routes(error_routes_data, errors_reader.at("routes"), ErrorStatusResponse())
        if error_routes_data
        else None
    )
    routes = context.build_routes(
        config.raw("routes"), config.at("routes"), _LeaveSubroute(next, errors)
    )
    config.done()
    return Subroute(routes, errors)
