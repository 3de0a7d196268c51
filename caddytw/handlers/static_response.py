"""``static_response``: a fixed answer, with placeholders in status, headers and body."""

from __future__ import annotations

import json
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_str_list, join_path
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer, respond
from caddytw.http.placeholders import Template, header_value
from caddytw.http.request import NOT_DONE_YET, CaddyRequest, transport_of
from caddytw.http.routing import LeafResource


def body_content_type(body: str) -> bytes:
    """Caddy's guess for a body without a Content-Type: JSON when it parses as an object
    or array, plain text otherwise."""
    stripped = body.strip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return b"application/json"
    return b"text/plain; charset=utf-8"


def parse_status(value: Any, path: str) -> Template | None:
    """A status code as an integer or a string that may hold placeholders."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(path, "expected a status code (integer or string)")
    text = str(value)
    template = Template(text)
    if template.constant is not None and not (text.isdigit() and 100 <= int(text) <= 999):
        raise ConfigError(path, f"invalid status code {text!r}")
    return template


def render_status(template: Template | None, request: CaddyRequest, default: int) -> int:
    if template is None:
        return default
    text = template.render(request)
    try:
        code = int(text)
    except ValueError:
        return 500
    return code if 100 <= code <= 999 else 500


def parse_header_templates(value: Any, path: str) -> list[tuple[bytes, list[Template]]]:
    reader = ObjectReader(value or {}, path)
    headers = []
    for name, values in reader.data.items():
        reader.ignore(name)
        templates = [Template(v) for v in expect_str_list(values, join_path(path, name))]
        headers.append((name.encode("latin-1"), templates))
    return headers


class StaticResponse(LeafResource):
    def __init__(
        self,
        status: Template | None,
        headers: list[tuple[bytes, list[Template]]],
        body: Template | None,
        close: bool,
        abort: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.close = close
        self.abort = abort

    def render(self, request: CaddyRequest) -> Answer:
        if self.abort:
            transport_of(request).abortConnection()
            return NOT_DONE_YET
        for name, templates in self.headers:
            request.responseHeaders.setRawHeaders(
                name, [header_value(t.render(request)) for t in templates]
            )
        # Inside error routes Caddy defaults to the error's status rather than 200.
        default = request.caddy_error.status if request.caddy_error is not None else 200
        request.setResponseCode(render_status(self.status, request, default))
        if self.close:
            request.setHeader(b"connection", b"close")
        if self.body is None:
            return respond(request, b"")
        body = self.body.render(request, known_only=True)
        if not request.responseHeaders.hasHeader(b"content-type") and body:
            request.setHeader(b"content-type", body_content_type(body))
        return respond(request, body.encode("utf-8"))


def build(config: ObjectReader, context: BuildContext, next: Handler) -> StaticResponse:
    status = parse_status(config.raw("status_code"), config.at("status_code"))
    headers = parse_header_templates(config.mapping("headers"), config.at("headers"))
    body = config.text("body", None)
    close = config.flag("close")
    abort = config.flag("abort")
    config.done()
    return StaticResponse(
        status, headers, Template(body) if body is not None else None, close, abort
    )
