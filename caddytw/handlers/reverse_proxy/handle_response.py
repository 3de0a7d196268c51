"""``handle_response``: decide what to do with the upstream's response before it is sent.

As Caddy's reverse proxy: the first entry whose response matcher accepts the upstream's
status and headers wins. An entry with ``status_code`` only changes the status of the
normal response. An entry with ``routes`` runs them instead of sending the response:
``{http.reverse_proxy.status_code}``, ``.status_text`` and ``.header.*`` describe the
upstream's response, ``copy_response`` / ``copy_response_headers`` take its body or
headers, and the routes end in the handler after the proxy, which is how
``forward_auth`` carries on to the application once the auth service said yes.

The two ``copy_*`` handlers live here because they only mean something inside those
routes: they find the pending response on the request (:data:`CONTEXT_ATTR`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_list, expect_str_list, join_path
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.errors import HandlerError, status_text
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest
from caddytw.http.respmatch import ResponseMatcher
from caddytw.http.routing import LeafResource, RouteList

#: Attribute of the request holding the :class:`PendingResponse` while routes run.
CONTEXT_ATTR = "caddytw_proxy_response"
HEADER_PREFIX = "http.reverse_proxy.header."


@dataclass(frozen=True)
class ResponseHandler:
    """One ``handle_response`` entry (``match`` None = every response)."""

    match: ResponseMatcher | None
    status_code: Template | None
    routes: RouteList | None


def build_response_handlers(
    data: object, path: str, context: BuildContext, next: Handler
) -> tuple[ResponseHandler, ...]:
    """Compile ``handle_response``; the routes end in the proxy's ``next``, as Caddy's
    ``rh.Routes.Compile(next)``."""
    if data is None:
        return ()
    handlers = []
    for index, item in enumerate(expect_list(data, path)):
        item_path = join_path(path, index)
        reader = ObjectReader(item, item_path)
        match_data = reader.raw("match")
        match = ResponseMatcher.parse(match_data, reader.at("match")) if match_data else None
        status = reader.raw("status_code")
        if status is not None and not isinstance(status, (int, str)):
            raise ConfigError(reader.at("status_code"), "expected a status code")
        routes_data = reader.raw("routes")
        reader.done()
        routes = (
            context.build_routes(routes_data, reader.at("routes"), next)
            if routes_data is not None
            else None
        )
        template = Template(str(status)) if status not in (None, "", 0) else None
        handlers.append(ResponseHandler(match, template, routes))
    return tuple(handlers)


class Finalizer(Protocol):
    def __call__(self, code: int) -> None: ...


@dataclass
class PendingResponse:
    """The upstream's response while ``handle_response`` routes decide about it."""

    code: int
    headers: Headers
    finalize: Finalizer
    finalized: bool = field(default=False)


def set_response_placeholders(request: CaddyRequest, code: int, headers: Headers) -> None:
    """``{http.reverse_proxy.status_code}``, ``.status_text`` (Go's ``"200 OK"``) and
    ``.header.<Field>`` (values joined by commas, any case of the name)."""
    values = request.placeholder_values
    values["http.reverse_proxy.status_code"] = str(code)
    values["http.reverse_proxy.status_text"] = f"{code} {status_text(code)}".rstrip()

    def provide(req: CaddyRequest, key: str) -> str | None:
        if not key.startswith(HEADER_PREFIX):
            return None
        raw = headers.getRawHeaders(key[len(HEADER_PREFIX) :].lower().encode("latin-1"))
        return None if raw is None else b",".join(raw).decode("latin-1")

    request.placeholder_providers.insert(0, provide)


def pending_of(request: CaddyRequest, handler: str) -> PendingResponse:
    pending: PendingResponse | None = getattr(request, CONTEXT_ATTR, None)
    if pending is None:
        raise HandlerError(
            500, f"cannot use '{handler}' outside of reverse_proxy's handle_response routes"
        )
    return pending


class CopyResponse(LeafResource):
    """``copy_response``: send the upstream's response (optionally with another status),
    with the proxy's usual header handling and streaming."""

    def __init__(self, status: Template | None) -> None:
        self.status = status

    def render(self, request: CaddyRequest) -> Answer:
        from caddytw.http.request import NOT_DONE_YET

        pending = pending_of(request, "copy_response")
        code = pending.code
        if self.status is not None:
            text = self.status.render(request)
            try:
                code = int(text)
            except ValueError:
                raise HandlerError(500, f"invalid status code {text!r}") from None
        pending.finalized = True
        pending.finalize(code)
        return NOT_DONE_YET


class CopyResponseHeaders(LeafResource):
    """``copy_response_headers``: put the upstream's header fields (``include`` only
    those, never the ``exclude`` ones) on the response, replacing, then carry on."""

    def __init__(self, include: frozenset[bytes], exclude: frozenset[bytes], next: Handler) -> None:
        self.include = include
        self.exclude = exclude
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        pending = pending_of(request, "copy_response_headers")
        for name, values in pending.headers.getAllRawHeaders():
            key = name.lower()
            if (self.include and key not in self.include) or key in self.exclude:
                continue
            request.responseHeaders.setRawHeaders(name, list(values))
        return self.next.render(request)


def build_copy_response(config: ObjectReader, context: BuildContext, next: Handler) -> CopyResponse:
    status = config.raw("status_code")
    if status is not None and not isinstance(status, (int, str)):
        raise ConfigError(config.at("status_code"), "expected a status code")
    config.done()
    return CopyResponse(Template(str(status)) if status not in (None, "", 0) else None)


def build_copy_response_headers(
    config: ObjectReader, context: BuildContext, next: Handler
) -> CopyResponseHeaders:
    include = expect_str_list(config.raw("include") or [], config.at("include"))
    exclude = expect_str_list(config.raw("exclude") or [], config.at("exclude"))
    config.done()
    if include and exclude:
        raise ConfigError(config.path, "cannot define both 'exclude' and 'include' lists at once")
    return CopyResponseHeaders(
        frozenset(n.lower().encode("latin-1") for n in include),
        frozenset(n.lower().encode("latin-1") for n in exclude),
        next,
    )
