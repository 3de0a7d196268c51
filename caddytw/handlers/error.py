"""``error``: fail the request on purpose, so ``errors.routes`` answer it."""

from __future__ import annotations

from typing import NoReturn

from caddytw.config.reader import ObjectReader
from caddytw.handlers.static_response import parse_status, render_status
from caddytw.http.build import BuildContext, Handler
from caddytw.http.errors import HandlerError
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource


class ErrorHandler(LeafResource):
    def __init__(self, message: Template, status: Template | None) -> None:
        self.message = message
        self.status = status

    def render(self, request: CaddyRequest) -> NoReturn:
        raise HandlerError(render_status(self.status, request, 500), self.message.render(request))


def build(config: ObjectReader, context: BuildContext, next: Handler) -> ErrorHandler:
    message = Template(config.text("error"))
    status = parse_status(config.raw("status_code"), config.at("status_code"))
    config.done()
    return ErrorHandler(message, status)
