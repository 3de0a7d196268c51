"""``rewrite``: change the request's method and URI before later handlers see it.

Caddy's steps, in Caddy's order: ``method``, ``uri`` (see
:mod:`caddytw.handlers.rewrite.urirewrite`), ``strip_path_prefix``, ``strip_path_suffix``,
``uri_substring``, ``path_regexp`` (see :mod:`caddytw.handlers.rewrite.pathrewrite`) and ``query``
(see :mod:`caddytw.handlers.rewrite.queryops`). Each step reads the request as the previous one
left it, so placeholders see the rewritten URI.
"""

from __future__ import annotations

from typing import Any

from caddytw.config.reader import ObjectReader, join_path
from caddytw.handlers.rewrite.pathrewrite import PathRegexp, StripPrefix, StripSuffix, Substring
from caddytw.handlers.rewrite.queryops import QueryOps
from caddytw.handlers.rewrite.requesturi import fill
from caddytw.handlers.rewrite.urirewrite import UriRewrite
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource


class Rewrite(LeafResource):
    def __init__(self, method: Template | None, steps: list[Any], next: Handler) -> None:
        self.method = method
        self.steps = steps
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        if self.method is not None:
            self._rewrite_method(request)
        for step in self.steps:
            step.apply(request)
        return self.next.render(request)

    def _rewrite_method(self, request: CaddyRequest) -> None:
        assert self.method is not None
        request.method = fill(self.method, request).upper().encode("latin-1", "replace")
        # twisted.web decides from ``method`` whether a body may be sent: answer as the
        # client asked (a HEAD stays bodiless), as Go's server does.
        original = request.original_method

        def restore(req: CaddyRequest) -> None:
            req.method = original

        request.header_hooks.append(restore)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> Rewrite:
    method, steps = parse_rewrite(config)
    return Rewrite(method, steps, next)


def parse_rewrite(config: ObjectReader) -> tuple[Template | None, list[Any]]:
    """A rewrite object's method template and steps; shared with ``reverse_proxy``'s
    ``rewrite``, which changes only the request sent upstream."""
    method = config.text("method")
    uri = config.text("uri")
    prefix = config.text("strip_path_prefix")
    suffix = config.text("strip_path_suffix")
    substrings = [
        Substring.parse(item, join_path(config.at("uri_substring"), index))
        for index, item in enumerate(config.array("uri_substring"))
    ]
    regexps = [
        PathRegexp.parse(item, join_path(config.at("path_regexp"), index))
        for index, item in enumerate(config.array("path_regexp"))
    ]
    query_data = config.raw("query")
    query = QueryOps.parse(query_data, config.at("query")) if query_data is not None else None
    config.done()
    steps: list[Any] = []
    if uri:
        steps.append(UriRewrite.parse(uri))
    if prefix:
        steps.append(StripPrefix(Template(prefix)))
    if suffix:
        steps.append(StripSuffix(Template(suffix)))
    steps.extend(substrings)
    steps.extend(regexps)
    if query is not None:
        steps.append(query)
    return (Template(method) if method else None), steps
