"""A minimal ``headers`` operation set (add, set, delete, replace) for proxied headers.

Interim: ``caddytw/http/headerops.py`` (the ``headers`` handler's) is being built on another
branch; once it lands, :func:`compile_header_ops` should delegate to it. The proxy only uses
:func:`compile_header_ops` and :meth:`HeaderOps.apply`, so the swap touches this file alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_list, expect_str_list, join_path
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest


@dataclass(frozen=True)
class Replacement:
    """One ``replace`` rule: a literal ``search`` or a ``search_regexp``, and ``replace``."""

    search: Template | None
    pattern: re.Pattern[str] | None
    replace: Template


@dataclass(frozen=True)
class HeaderOps:
    """Caddy's HeaderOps, applied in Caddy's order: add, set, delete, replace."""

    add: list[tuple[Template, list[Template]]] = field(default_factory=list)
    set: list[tuple[Template, list[Template]]] = field(default_factory=list)
    delete: list[Template] = field(default_factory=list)
    replace: list[tuple[Template, list[Replacement]]] = field(default_factory=list)

    def apply(self, headers: Headers, request: CaddyRequest) -> None:
        def fill(template: Template) -> str:
            return template.render(request, known_only=True)

        for name, values in self.add:
            for value in values:
                headers.addRawHeader(_bytes(fill(name)), _bytes(fill(value)))
        for name, values in self.set:
            headers.setRawHeaders(_bytes(fill(name)), [_bytes(fill(v)) for v in values])
        for name in self.delete:
            _delete(headers, fill(name).lower())
        for name, rules in self.replace:
            _replace(headers, fill(name), rules, fill)


def _bytes(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _delete(headers: Headers, pattern: str) -> None:
    """Delete a field, or every field matching ``*suffix``, ``prefix*`` or ``*infix*``."""
    if "*" not in pattern:
        headers.removeHeader(_bytes(pattern))
        return
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    core = pattern.strip("*")
    for raw_name, _ in list(headers.getAllRawHeaders()):
        name = raw_name.decode("latin-1").lower()
        if (
            (starts and ends and core in name)
            or (starts and not ends and name.endswith(core))
            or (ends and not starts and name.startswith(core))
        ):
            headers.removeHeader(raw_name)


def _replace(headers: Headers, name: str, rules: list[Replacement], fill: Any) -> None:
    if name == "*":
        names = [raw for raw, _ in headers.getAllRawHeaders()]
    else:
        names = [_bytes(name)] if headers.hasHeader(_bytes(name)) else []
    for raw_name in names:
        values = [v.decode("latin-1") for v in headers.getRawHeaders(raw_name, [])]
        for rule in rules:
            replacement = fill(rule.replace)
            if rule.pattern is not None:
                values = [rule.pattern.sub(_go_template(replacement), v) for v in values]
            elif rule.search is not None:
                values = [v.replace(fill(rule.search), replacement) for v in values]
        headers.setRawHeaders(raw_name, [_bytes(v) for v in values])


def _go_template(replacement: str) -> str:
    """Go's ``${1}``/``$1`` group references as Python's ``\\g<1>``."""
    escaped = replacement.replace("\\", "\\\\")
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", escaped)


def _field_values(data: Any, path: str) -> list[tuple[Template, list[Template]]]:
    reader = ObjectReader(data, path)
    fields = []
    for name, values in reader.data.items():
        reader.ignore(name)
        fields.append(
            (Template(name), [Template(v) for v in expect_str_list(values, join_path(path, name))])
        )
    return fields


def _replacements(data: Any, path: str) -> list[tuple[Template, list[Replacement]]]:
    reader = ObjectReader(data, path)
    result = []
    for name, rules in reader.data.items():
        reader.ignore(name)
        rules_path = join_path(path, name)
        compiled = []
        for index, rule in enumerate(expect_list(rules, rules_path)):
            rule_reader = ObjectReader(rule, join_path(rules_path, index))
            search = rule_reader.text("search", None)
            regexp = rule_reader.text("search_regexp", None)
            replace = rule_reader.text("replace")
            rule_reader.done()
            pattern = None
            if regexp is not None:
                try:
                    pattern = re.compile(regexp)
                except re.error as error:
                    raise ConfigError(rule_reader.at("search_regexp"), str(error)) from None
            compiled.append(
                Replacement(
                    Template(search) if search is not None else None, pattern, Template(replace)
                )
            )
        result.append((Template(name), compiled))
    return result


def compile_header_ops(reader: ObjectReader) -> HeaderOps | None:
    """Parse ``{"add", "set", "delete", "replace"}``; None when no operation is given."""
    ops = HeaderOps(
        add=_field_values(reader.mapping("add"), reader.at("add")),
        set=_field_values(reader.mapping("set"), reader.at("set")),
        delete=[Template(name) for name in reader.strings("delete")],
        replace=_replacements(reader.mapping("replace"), reader.at("replace")),
    )
    if not (ops.add or ops.set or ops.delete or ops.replace):
        return None
    return ops
