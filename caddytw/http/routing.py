"""Caddy's routing: route lists compiled into chains of resources.

Each route's handlers are built back to front, so every handler gets the resource that
follows it as ``next``. The ``next`` of a route's last handler is a continuation that
evaluates the remaining routes of the same list (or leaves the list when the route is
``terminal``), which is exactly Caddy's "all matching routes chained in order".

A terminal route ends the whole request, not just its own list: Caddy's ``wrapRoute``
(caddyhttp/routes.go) compiles it onto an empty handler, so a terminal route inside a
``subroute`` does not carry on with the routes after the subroute either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.web.resource import IResource
from zope.interface import implementer

from caddytw.config.errors import ConfigError, ConfigErrors, ErrorCollector
from caddytw.config.reader import ObjectReader, expect_list, join_path
from caddytw.http.dispatch import respond
from caddytw.http.matchers import Matcher, build_matcher_set
from caddytw.http.request import Answer, CaddyRequest, Handler


class HandlerBuilder(Protocol):
    """What compiles one ``{"handler": ...}`` object: the handler factories are passed
    in this way (:class:`caddytw.http.build.BuildContext` is the one the server uses), so
    routing never imports the handlers it compiles."""

    def build_handler(self, data: object, path: str, next: Handler) -> Handler: ...


@implementer(IResource)
class LeafResource:
    """Base for resources that answer every path themselves (no child traversal)."""

    isLeaf = True

    def getChildWithDefault(self, name: bytes, request: object) -> LeafResource:
        return self

    def putChild(self, path: bytes, child: object) -> None:
        raise NotImplementedError("caddytw resources route by matchers, not children")

    def render(self, request: CaddyRequest) -> Answer:
        raise NotImplementedError


class EmptyResponse(LeafResource):
    """What answers when no handler did: an empty 200, as Caddy."""

    def render(self, request: CaddyRequest) -> Answer:
        return respond(request, b"")


class ErrorStatusResponse(LeafResource):
    """The end of an error chain: the error's status with an empty body."""

    def render(self, request: CaddyRequest) -> Answer:
        status = request.caddy_error.status if request.caddy_error else 500
        request.setResponseCode(status)
        return respond(request, b"")


class TerminalEnd(LeafResource):
    """The ``next`` of a terminal route: nothing else runs. As Caddy's ``emptyHandler``
    (an empty 200), or ``errorEmptyHandler`` (the error's status) inside an error chain."""

    def render(self, request: CaddyRequest) -> Answer:
        if request.caddy_error is not None:
            request.setResponseCode(request.caddy_error.status)
        return respond(request, b"")


TERMINAL_END = TerminalEnd()
#: A route's chain until :func:`build_routes` builds it (after every route of the list
#: exists, so that continuations can index the list).
_UNBUILT = EmptyResponse()


@dataclass
class CompiledRoute:
    group: str
    match_sets: list[Matcher]
    terminal: bool
    chain: Handler = _UNBUILT

    def matches(self, request: CaddyRequest) -> bool:
        return not self.match_sets or any(m(request) for m in self.match_sets)


class RouteList(LeafResource):
    """An ordered list of routes; rendering runs the first matching route's chain."""

    def __init__(self, next: Handler) -> None:
        self.routes: list[CompiledRoute] = []
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        return self.render_from(request, 0)

    def render_from(self, request: CaddyRequest, start: int) -> Answer:
        routes = self.routes
        for index in range(start, len(routes)):
            route = routes[index]
            group = route.group
            if group:
                # The groups this list already ran for this request (made on the first
                # grouped route: most lists have none, and need no set per request).
                groups = request.route_groups.get(id(self))
                if groups is None:
                    groups = request.route_groups[id(self)] = set()
                if group in groups:
                    continue
                if not route.matches(request):
                    continue
                groups.add(group)
            elif route.match_sets and not route.matches(request):
                continue
            return route.chain.render(request)
        return self.next.render(request)


class _Continue(LeafResource):
    """The ``next`` of a non-terminal route: carry on with the routes after it."""

    def __init__(self, routes: RouteList, start: int) -> None:
        self.routes = routes
        self.start = start

    def render(self, request: CaddyRequest) -> Answer:
        return self.routes.render_from(request, self.start)


def build_routes(
    data: object,
    path: str,
    context: HandlerBuilder,
    next: Handler,
    errors: ErrorCollector | None = None,
) -> RouteList:
    """Compile a JSON route list; every problem is added to ``errors`` (or raised)."""
    collector = errors if errors is not None else ErrorCollector()
    route_list = RouteList(next)
    items = expect_list(data, path) if data is not None else []
    for index, item in enumerate(items):
        route_path = join_path(path, index)
        try:
            route_list.routes.append(_build_route(item, route_path, context, route_list, collector))
        except (ConfigError, ConfigErrors) as error:
            collector.add(error)
            route_list.routes.append(CompiledRoute("", [], False, EmptyResponse()))
    # Chains are built after every route exists so continuations can index the list.
    for index, route in enumerate(route_list.routes):
        if route.chain is _UNBUILT:
            follow: Handler = TERMINAL_END if route.terminal else _Continue(route_list, index + 1)
            route.chain = _build_chain(
                items[index], join_path(path, index), context, follow, collector
            )
    if errors is None:
        collector.raise_if_any()
    return route_list


def _build_route(
    item: object, path: str, context: HandlerBuilder, owner: RouteList, collector: ErrorCollector
) -> CompiledRoute:
    reader = ObjectReader(item, path, what="object (route)")
    group = reader.text("group")
    terminal = reader.flag("terminal")
    match_sets: list[Matcher] = []
    for set_index, match_set in enumerate(reader.array("match")):
        try:
            match_sets.append(
                build_matcher_set(match_set, join_path(reader.at("match"), set_index))
            )
        except ConfigError as error:
            collector.add(error)
    reader.raw("handle")
    reader.done()
    return CompiledRoute(group, match_sets, terminal)


def _build_chain(
    item: object, path: str, context: HandlerBuilder, follow: Handler, collector: ErrorCollector
) -> Handler:
    handlers = item.get("handle") or [] if isinstance(item, dict) else []
    handle_path = join_path(path, "handle")
    try:
        expect_list(handlers, handle_path)
    except ConfigError as error:
        collector.add(error)
        return follow
    resource = follow
    for index in range(len(handlers) - 1, -1, -1):
        try:
            resource = context.build_handler(
                handlers[index], join_path(handle_path, index), resource
            )
        except (ConfigError, ConfigErrors) as error:
            collector.add(error)
    return resource
