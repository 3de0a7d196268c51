"""Caddy's header operations (``add``, ``set``, ``delete``, ``replace``) on twisted Headers.

Shared by the ``headers`` handler and ``reverse_proxy``'s ``headers.request`` /
``headers.response``. Parsing happens once per config; :meth:`HeaderOps.apply` runs per
request with placeholders filled the way Caddy's ``ReplaceKnown`` does (unknown
placeholders stay as written). The order is Caddy's: delete ``*`` first, then add,
set, delete, replace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_list, expect_str_list, join_path
from caddytw.http.goregexp import compile_go, replace_all
from caddytw.http.placeholders import Template
from caddytw.http.respmatch import ResponseMatcher

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest


def header_bytes(text: str) -> bytes:
    """A header name or value as bytes: latin-1 round-trips what requests carried in;
    text beyond latin-1 (only possible from the config) goes out as UTF-8, as Go sends."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def valid_field_name(name: str) -> bool:
    """An RFC 9110 token: what may be sent as a header name."""
    return _TOKEN.fullmatch(name) is not None


def _render(template: Template, request: CaddyRequest | None) -> str:
    if template.constant is not None:
        return template.constant
    if request is None:
        return template.source
    return template.render(request, known_only=True)


@dataclass(frozen=True)
class Replacement:
    """One in-place substitution: a substring, or a Go regexp with ``$1`` references."""

    search: Template | None
    regexp: re.Pattern[str] | None
    regexp_template: Template | None  # a search_regexp with placeholders: compiled late
    replace: Template

    @classmethod
    def parse(cls, data: Any, path: str) -> Replacement:
        reader = ObjectReader(data, path)
        search = reader.text("search")
        search_regexp = reader.text("search_regexp")
        replace = reader.text("replace")
        reader.done()
        if search and search_regexp:
            raise ConfigError(
                path, "cannot specify both a substring search and a regular expression search"
            )
        regexp = None
        regexp_template = None
        if search_regexp:
            template = Template(search_regexp)
            if template.constant is None:
                regexp_template = template
            else:
                regexp = compile_go(search_regexp, reader.at("search_regexp"))
        return cls(Template(search), regexp, regexp_template, Template(replace))

    def apply(self, value: str, request: CaddyRequest | None) -> str:
        replace = _render(self.replace, request)
        if self.regexp is not None:
            return replace_all(self.regexp, value, replace)
        if self.regexp_template is not None:
            try:
                regexp = re.compile(_render(self.regexp_template, request))
            except re.error:
                return value  # as Caddy: a placeholder-built regexp that fails is skipped
            return replace_all(regexp, value, replace)
        assert self.search is not None
        return value.replace(_render(self.search, request), replace)


def _field_matches(pattern: str, field: str) -> bool:
    """Caddy's delete wildcards on lowercased names: ``*suffix``, ``prefix*``, ``*sub*``."""
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if starts and ends:
        return pattern[1:-1] in field
    if starts:
        return field.endswith(pattern[1:])
    if ends:
        return field.startswith(pattern[:-1])
    return field == pattern


@dataclass(frozen=True)
class HeaderOps:
    """A parsed ``{"add", "set", "delete", "replace"}`` object."""

    add: tuple[tuple[Template, tuple[Template, ...]], ...] = ()
    set: tuple[tuple[Template, tuple[Template, ...]], ...] = ()
    delete: tuple[Template, ...] = ()
    replace: tuple[tuple[Template, tuple[Replacement, ...]], ...] = ()
    #: A ``set`` or ``replace`` field was written ``>Field``: Caddy's "deferred" prefix
    #: (the response operations then wait until the headers are written).
    deferred_prefix: bool = False

    @classmethod
    def parse(cls, data: Any, path: str) -> HeaderOps:
        reader = ObjectReader(data, path)
        ops = cls.from_reader(reader)
        reader.done()
        return ops

    @classmethod
    def from_reader(cls, reader: ObjectReader) -> HeaderOps:
        """Read the four operation fields of ``reader`` (the caller calls ``done``)."""
        set_data = reader.mapping("set")
        replace_data = reader.mapping("replace")
        return cls(
            add=_parse_field_values(reader.mapping("add"), reader.at("add")),
            set=_parse_field_values(set_data, reader.at("set"), deferrable=True),
            delete=tuple(Template(name) for name in reader.strings("delete")),
            replace=_parse_replacements(replace_data, reader.at("replace")),
            deferred_prefix=any(name.startswith(">") for name in [*set_data, *replace_data]),
        )

    def __bool__(self) -> bool:
        return bool(self.add or self.set or self.delete or self.replace)

    def apply(self, headers: Headers, request: CaddyRequest | None = None) -> None:
        """Apply every operation to ``headers``, filling placeholders from ``request``."""
        deletes = [_render(name, request) for name in self.delete]
        if "*" in deletes:
            for name, _ in list(headers.getAllRawHeaders()):
                headers.removeHeader(name)
        for name_template, values in self.add:
            name_text = _render(name_template, request)
            if not valid_field_name(name_text):
                continue  # Go never sends an invalid field name either
            name = header_bytes(name_text)
            for value in values:
                headers.addRawHeader(name, header_bytes(_render(value, request)))
        for name_template, values in self.set:
            name_text = _render(name_template, request)
            if not valid_field_name(name_text):
                continue
            name = header_bytes(name_text)
            joined = ",".join(_render(value, request) for value in values)
            headers.setRawHeaders(name, [header_bytes(joined)])
        for pattern in (d.lower() for d in deletes if d != "*"):
            if not pattern.startswith("*") and not pattern.endswith("*"):
                headers.removeHeader(header_bytes(pattern))
                continue
            for name, _ in list(headers.getAllRawHeaders()):
                if _field_matches(pattern, name.decode("latin-1").lower()):
                    headers.removeHeader(name)
        for field_template, replacements in self.replace:
            field = _render(field_template, request).lower()
            for name, raw_values in list(headers.getAllRawHeaders()):
                if field != "*" and name.decode("latin-1").lower() != field:
                    continue
                texts = [value.decode("latin-1") for value in raw_values]
                for replacement in replacements:
                    texts = [replacement.apply(text, request) for text in texts]
                headers.setRawHeaders(name, [header_bytes(text) for text in texts])

    def apply_to_request(self, request: CaddyRequest) -> None:
        """Apply to the request's own headers; ``Host`` is an ordinary field here, so
        setting or deleting it changes ``{http.request.host}`` as in Caddy."""
        self.apply(request.requestHeaders, request)


def _parse_field_values(
    data: dict[str, Any], path: str, deferrable: bool = False
) -> tuple[tuple[Template, tuple[Template, ...]], ...]:
    fields = []
    for name, values in data.items():
        template = Template(name[1:] if deferrable and name.startswith(">") else name)
        if template.constant is not None and not valid_field_name(template.constant):
            raise ConfigError(join_path(path, name), f"invalid header field name {name!r}")
        strings = expect_str_list(values, join_path(path, name))
        fields.append((template, tuple(Template(value) for value in strings)))
    return tuple(fields)


def _parse_replacements(
    data: dict[str, Any], path: str
) -> tuple[tuple[Template, tuple[Replacement, ...]], ...]:
    fields = []
    for name, items in data.items():
        field_path = join_path(path, name)
        replacements = tuple(
            Replacement.parse(item, join_path(field_path, index))
            for index, item in enumerate(expect_list(items, field_path))
        )
        fields.append((Template(name.removeprefix(">")), replacements))
    return tuple(fields)


@dataclass(frozen=True)
class ResponseHeaderOps:
    """``headers.response``: operations plus ``require`` and ``deferred``.

    Caddy applies them at once unless ``deferred`` is true or ``require`` is set; then
    they wait until the response headers are about to be written, and ``require`` must
    match the response's status and headers.
    """

    ops: HeaderOps
    require: ResponseMatcher | None
    deferred: bool

    @classmethod
    def parse(cls, data: Any, path: str) -> ResponseHeaderOps:
        reader = ObjectReader(data, path)
        ops = HeaderOps.from_reader(reader)
        require_data = reader.raw("require")
        require = (
            ResponseMatcher.parse(require_data, reader.at("require"))
            if require_data is not None
            else None
        )
        deferred = reader.flag("deferred")
        reader.done()
        return cls(ops, require, deferred)

    @property
    def waits(self) -> bool:
        """True when the operations must wait for the response to be written."""
        return self.deferred or self.ops.deferred_prefix or self.require is not None

    def applies_to(self, status: int, headers: Headers) -> bool:
        return self.require is None or self.require.matches(status, headers)

    def apply_to_response(
        self, status: int, headers: Headers, request: CaddyRequest | None = None
    ) -> None:
        """Apply when ``require`` matches (for deferred use and the reverse proxy)."""
        if self.applies_to(status, headers):
            self.ops.apply(headers, request)
