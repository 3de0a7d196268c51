"""``map``: derive placeholders from another value through a lookup table.

As in Caddy, nothing is computed when the handler runs: the destinations become lazy
placeholders, evaluated from the source each time one is used (so a later rewrite is
seen, and a large table costs nothing for requests that never read the result). The
first mapping whose input equals the source (or whose ``input_regexp`` matches it) and
whose output is not ``null`` wins; otherwise the default applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_list, join_path
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.goregexp import compile_go, expand
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource


def to_text(value: Any) -> str:
    """Caddy's ``ToString`` for JSON outputs: strings as-is, numbers as Go formats a
    float64 (``1.0`` is ``1``), booleans as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


@dataclass(frozen=True)
class Mapping:
    input: str | None
    regexp: re.Pattern[str] | None
    outputs: tuple[Template | None, ...]  # regexp outputs use .source ($1 expansion)

    @classmethod
    def parse(cls, data: Any, path: str) -> Mapping:
        reader = ObjectReader(data, path)
        text = reader.text("input")
        pattern = reader.text("input_regexp")
        outputs = expect_list(reader.raw("outputs", []), reader.at("outputs"))
        reader.done()
        if text and pattern:
            raise ConfigError(
                path, "mapping has both input and input_regexp fields specified, which is confusing"
            )
        for index, output in enumerate(outputs):
            if isinstance(output, dict | list):
                raise ConfigError(
                    join_path(reader.at("outputs"), index), "an output must be a scalar or null"
                )
        regexp = compile_go(pattern, reader.at("input_regexp")) if pattern else None
        return cls(
            None if pattern else text,
            regexp,
            tuple(None if out is None else Template(to_text(out)) for out in outputs),
        )

    @property
    def key(self) -> str:
        return self.regexp.pattern if self.regexp is not None else self.input or ""


class MapHandler(LeafResource):
    def __init__(
        self,
        source: Template,
        destinations: list[str],
        mappings: list[Mapping],
        defaults: list[Template],
        next: Handler,
    ) -> None:
        self.source = source
        self.index = {name: position for position, name in enumerate(destinations)}
        self.mappings = mappings
        self.defaults = defaults
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        evaluating: set[str] = set()

        def provide(req: CaddyRequest, key: str) -> str | None:
            position = self.index.get(key)
            if position is None:
                return None
            if key in evaluating:
                return ""  # a destination that (indirectly) reads itself
            evaluating.add(key)
            try:
                return self.lookup(req, position)
            finally:
                evaluating.discard(key)

        request.placeholder_providers.append(provide)
        return self.next.render(request)

    def lookup(self, request: CaddyRequest, position: int) -> str:
        source = self.source.render(request)
        for mapping in self.mappings:
            output = mapping.outputs[position]
            if output is None:
                continue
            if mapping.regexp is not None:
                match = mapping.regexp.search(source)
                if match is None:
                    continue
                return expand(output.source, match)
            if source == mapping.input:
                return output.render(request)
        if position < len(self.defaults):
            return self.defaults[position].render(request)
        return ""


def parse_destination(value: Any, path: str) -> str:
    if not isinstance(value, str) or value.count("{") != 1 or not value.startswith("{"):
        raise ConfigError(path, "destination must be a placeholder and only a placeholder")
    return value.strip("{}")


def build(config: ObjectReader, context: BuildContext, next: Handler) -> MapHandler:
    source = config.text("source")
    destinations = [
        parse_destination(value, join_path(config.at("destinations"), index))
        for index, value in enumerate(config.array("destinations"))
    ]
    mappings = [
        Mapping.parse(item, join_path(config.at("mappings"), index))
        for index, item in enumerate(config.array("mappings"))
    ]
    defaults = config.strings("defaults")
    config.done()
    if defaults and len(defaults) != len(destinations):
        raise ConfigError(
            config.at("defaults"),
            f"{len(destinations)} destinations != {len(defaults)} defaults",
        )
    seen: dict[str, int] = {}
    for index, mapping in enumerate(mappings):
        path = join_path(config.at("mappings"), index)
        if mapping.key in seen:
            raise ConfigError(
                path,
                f"mapping {index} has a duplicate input {mapping.key!r} "
                f"previously used with mapping {seen[mapping.key]}",
            )
        seen[mapping.key] = index
        if len(mapping.outputs) != len(destinations):
            raise ConfigError(
                join_path(path, "outputs"),
                f"mapping {index} has {len(mapping.outputs)} outputs but there are "
                f"{len(destinations)} destinations defined",
            )
    return MapHandler(
        Template(source), destinations, mappings, [Template(d) for d in defaults], next
    )
