"""``vars``: set request variables (``{http.vars.*}``, the ``vars`` matcher, ``root``)."""

from __future__ import annotations

from typing import Any

from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource


class Vars(LeafResource):
    def __init__(self, values: dict[str, Any], next: Handler) -> None:
        self.values = values
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        for key, value in self.values.items():
            request.caddy_vars[key] = (
                value.render(request) if isinstance(value, Template) else value
            )
        return self.next.render(request)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> Vars:
    values: dict[str, Any] = {}
    for key, value in config.data.items():
        if key in ("handler", "@id"):
            continue
        config.ignore(key)
        values[key] = Template(value) if isinstance(value, str) else value
    config.done()
    return Vars(values, next)
