"""``rewrite``: change the request's method and URI before later handlers see it.

Follows Caddy's ``rewrite`` step by step: ``method``, ``uri`` (only the parts written
are replaced; ``?`` alone clears the query; query placeholders are query-escaped),
``strip_path_prefix``/``strip_path_suffix`` (compared in decoded space unless the
pattern spells an escape), ``uri_substring``, ``path_regexp`` and ``query`` operations.
Every step reads the request as the previous step left it, so placeholders see the
rewritten URI. The result goes through ``request.set_uri``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_list, join_path
from caddytw.http.goregexp import compile_go, replace_all
from caddytw.http.gourl import (
    caddy_clean_path,
    encode_query,
    escape_path,
    escape_path_keep_slashes,
    parse_query,
    query_escape,
    unescape_path,
)
from caddytw.http.placeholders import Template, resolve, split_template
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource

# -- the request URI as Go's URL sees it ----------------------------------------------


def escaped_path(request: CaddyRequest) -> str:
    """``URL.EscapedPath()``: the path as the client (or the last rewrite) spelled it."""
    return request.path.decode("latin-1")


def raw_query(request: CaddyRequest) -> str:
    return request.uri.partition(b"?")[2].decode("latin-1")


def store_uri(request: CaddyRequest, path: str, query: str) -> None:
    """Set the request target from an escaped path and a raw query (Go's RequestURI)."""
    target = (path or "/") + ("?" + query if query else "")
    request.set_uri(target.encode("latin-1", "replace"))


def change_path(request: CaddyRequest, change: Any) -> None:
    """Caddy's ``changePath``: apply ``change`` to the escaped path; when the result does
    not decode, apply it to the decoded path instead and escape that."""
    new_raw = change(escaped_path(request))
    decoded = unescape_path(new_raw)
    if decoded is None or decoded == "":
        path = escape_path(change(request.decoded_path))
    else:
        path = new_raw
    store_uri(request, path, raw_query(request))


def _render(template: Template, request: CaddyRequest) -> str:
    return template.constant if template.constant is not None else template.render(request)


# -- uri ------------------------------------------------------------------------------


def split_uri_template(uri: str) -> tuple[str | None, str | None]:
    """The path and query parts of a ``uri`` value (None when not written); a fragment
    is dropped, as the server never sees one."""
    path_end = len(uri)
    query: str | None = None
    question = uri.find("?")
    hash_mark = uri.find("#")
    if hash_mark != -1 and (question == -1 or hash_mark < question):
        path_end = hash_mark
    elif question != -1:
        path_end = question
        query_end = uri.find("#", question + 1)
        query = uri[question + 1 : query_end if query_end != -1 else len(uri)]
    path = uri[:path_end]
    return (path or None), query


_QUERY_COMPONENT = re.compile(r"[=&]")


def query_components(query: str) -> list[tuple[str, str]]:
    """Split a query template into ``(component, delimiter that ends it)``."""
    parts: list[tuple[str, str]] = []
    position = 0
    while position < len(query):
        found = _QUERY_COMPONENT.search(query, position)
        if found is None:
            parts.append((query[position:], ""))
            break
        parts.append((query[position : found.start()], found.group()))
        position = found.end()
    return parts


def build_query_string(components: list[tuple[Template | str, str]], request: CaddyRequest) -> str:
    """Caddy's ``buildQueryString``: each key or value rendered with placeholder values
    query-escaped (``{http.request.uri.query}`` in key position is already escaped),
    keys appended, never merged; empty keys vanish with their ``&``."""
    out = ""
    wrote_value = True  # the first component is a key
    for component, delimiter in components:
        text = (
            component
            if isinstance(component, str)
            else _render_query_component(component, request, wrote_value)
        )
        if wrote_value:
            if out and text:
                out += "&"
        else:
            out += "="
        out += text
        wrote_value = delimiter == "&"
    return out


def _render_query_component(template: Template, request: CaddyRequest, is_key: bool) -> str:
    out: list[str] = []
    for is_placeholder, text in template.parts:
        if not is_placeholder:
            out.append(text)
            continue
        value = resolve(request, text) or ""
        if text == "http.request.uri.query" and is_key:
            out.append(value)
        else:
            out.append(query_escape(value))
    return "".join(out)


def _literal_components(query: str) -> list[tuple[Template | str, str]]:
    return [(component, delimiter) for component, delimiter in query_components(query)]


@dataclass(frozen=True)
class UriRewrite:
    path: Template | None
    path_source: str
    query: list[tuple[Template | str, str]] | None

    @classmethod
    def parse(cls, uri: str) -> UriRewrite:
        path, query = split_uri_template(uri)
        components: list[tuple[Template | str, str]] | None = None
        if query is not None:
            components = [(Template(c), d) for c, d in query_components(query)]
        return cls(Template(path) if path is not None else None, path or "", components)

    def apply(self, request: CaddyRequest) -> None:
        new_path: str | None = None
        injected: str | None = None
        if self.path is not None:
            new_path = self._render_path(request)
            before, question, after = new_path.partition("?")
            if question:
                new_path, injected = before, after
        query = raw_query(request)
        if self.query is not None:
            components = self.query
            if not components and injected is not None:
                # A query that came out of a placeholder is data, never a template; its
                # braces are escaped as Caddy does (GHSA-j8px-rmrx-76h9).
                escaped = injected.replace("{", "%7B").replace("}", "%7D")
                components = _literal_components(escaped)
            query = build_query_string(components, request)
        path = escaped_path(request)
        if new_path is not None:
            decoded = unescape_path(new_path)
            path = escape_path(decoded if decoded is not None else new_path)
        store_uri(request, path, query)

    def _render_path(self, request: CaddyRequest) -> str:
        """Render the path part; the path-valued placeholders are inserted escaped, so a
        literal ``?`` or ``%`` in them is not taken for a delimiter or an escape."""
        out: list[str] = []
        for is_placeholder, text in split_template(self.path_source):
            if not is_placeholder:
                out.append(text)
            elif text == "http.request.uri.path":
                out.append(escaped_path(request))
            elif text == "http.matchers.file.relative":
                value = resolve(request, text)
                out.append(escape_path_keep_slashes(value) if value is not None else "")
            else:
                out.append(resolve(request, text) or "")
        return "".join(out)


# -- prefix and suffix ----------------------------------------------------------------


def _same_char(a: int, b: int) -> bool:
    if a == b:
        return True
    return a < 128 and b < 128 and chr(a).lower() == chr(b).lower()


def trim_path_prefix(escaped: str, prefix: str) -> str:
    """Caddy's ``trimPathPrefix``: walk both in step; a ``%xx`` in the path counts as its
    byte unless the prefix spells a ``%`` there too; ASCII letters compare caselessly."""
    path_bytes = escaped.encode("latin-1", "replace")
    prefix_bytes = prefix.encode("utf-8", "surrogateescape")
    i_path = i_prefix = 0
    while i_path < len(path_bytes) and i_prefix < len(prefix_bytes):
        prefix_char = prefix_bytes[i_prefix]
        char = path_bytes[i_path]
        if char == 0x25 and prefix_char != 0x25 and len(path_bytes) >= i_path + 3:
            decoded = unescape_path(path_bytes[i_path : i_path + 3].decode("latin-1"))
            if decoded is None:
                return escaped
            char = decoded.encode("utf-8", "surrogateescape")[0]
            i_path += 2
        if not _same_char(char, prefix_char):
            return escaped
        i_path += 1
        i_prefix += 1
    if i_prefix >= len(prefix_bytes):
        return path_bytes[i_path:].decode("latin-1")
    return escaped


def _reverse(text: str) -> str:
    return text[::-1]


@dataclass(frozen=True)
class StripPrefix:
    prefix: Template

    def apply(self, request: CaddyRequest) -> None:
        prefix = _render(self.prefix, request)
        if not prefix.startswith("/"):
            prefix = "/" + prefix
        merge = "//" not in prefix
        change_path(request, lambda p: trim_path_prefix(caddy_clean_path(p, merge), prefix))


@dataclass(frozen=True)
class StripSuffix:
    suffix: Template

    def apply(self, request: CaddyRequest) -> None:
        suffix = _render(self.suffix, request)
        merge = "//" not in suffix
        change_path(
            request,
            lambda p: _reverse(
                trim_path_prefix(_reverse(caddy_clean_path(p, merge)), _reverse(suffix))
            ),
        )


# -- substring and regexp -------------------------------------------------------------


@dataclass(frozen=True)
class Substring:
    find: Template
    replace: Template
    limit: int
    merge_slashes: bool

    @classmethod
    def parse(cls, data: Any, path: str) -> Substring:
        reader = ObjectReader(data, path)
        find = reader.text("find")
        replace = reader.text("replace")
        limit = reader.integer("limit")
        reader.done()
        return cls(Template(find), Template(replace), limit, "//" not in find)

    def apply(self, request: CaddyRequest) -> None:
        if not self.find.source:
            return
        find = _render(self.find, request)
        replace = _render(self.replace, request)
        count = self.limit if self.limit > 0 else -1

        def substitute(text: str) -> str:
            return text.replace(find, replace, count)

        change_path(request, lambda p: substitute(caddy_clean_path(p, self.merge_slashes)))
        query = substitute(raw_query(request))
        store_uri(request, escaped_path(request), query)


@dataclass(frozen=True)
class PathRegexp:
    find: re.Pattern[str]
    replace: Template

    @classmethod
    def parse(cls, data: Any, path: str) -> PathRegexp:
        reader = ObjectReader(data, path)
        find = reader.text("find")
        replace = reader.text("replace")
        reader.done()
        if not find:
            raise ConfigError(join_path(path, "find"), "path_regexp find cannot be empty")
        return cls(compile_go(find, join_path(path, "find")), Template(replace))

    def apply(self, request: CaddyRequest) -> None:
        replace = _render(self.replace, request)
        change_path(request, lambda p: replace_all(self.find, p, replace))


# -- query operations -----------------------------------------------------------------


@dataclass(frozen=True)
class QueryReplace:
    key: Template
    search: Template
    regexp: re.Pattern[str] | None
    replace: Template

    def apply(self, value: str, request: CaddyRequest) -> str:
        replace = self.replace.render(request, known_only=True)
        if self.regexp is not None:
            return replace_all(self.regexp, value, replace)
        return value.replace(self.search.render(request, known_only=True), replace)


def _key_values(data: Any, path: str) -> list[tuple[Template, Template]]:
    """``[{"key", "val"}]``; an empty key is skipped when applied, as in Caddy."""
    pairs = []
    for index, item in enumerate(expect_list(data or [], path)):
        reader = ObjectReader(item, join_path(path, index))
        key = reader.text("key")
        val = reader.text("val")
        reader.done()
        pairs.append((Template(key), Template(val)))
    return pairs


@dataclass(frozen=True)
class QueryOps:
    rename: list[tuple[Template, Template]]
    set: list[tuple[Template, Template]]
    add: list[tuple[Template, Template]]
    replace: list[QueryReplace]
    delete: list[Template]

    @classmethod
    def parse(cls, data: Any, path: str) -> QueryOps:
        reader = ObjectReader(data, path)
        rename = _key_values(reader.raw("rename"), reader.at("rename"))
        set_ops = _key_values(reader.raw("set"), reader.at("set"))
        add = _key_values(reader.raw("add"), reader.at("add"))
        replace = []
        for index, item in enumerate(reader.array("replace")):
            item_path = join_path(reader.at("replace"), index)
            item_reader = ObjectReader(item, item_path)
            key = item_reader.text("key")
            search = item_reader.text("search")
            search_regexp = item_reader.text("search_regexp")
            replacement = item_reader.text("replace")
            item_reader.done()
            regexp = (
                compile_go(search_regexp, join_path(item_path, "search_regexp"))
                if search_regexp
                else None
            )
            replace.append(
                QueryReplace(Template(key), Template(search), regexp, Template(replacement))
            )
        delete = [Template(key) for key in reader.strings("delete")]
        reader.done()
        return cls(rename, set_ops, add, replace, delete)

    def apply(self, request: CaddyRequest) -> None:
        query = parse_query(raw_query(request))
        for key_template, val_template in self.rename:
            key, new_key = _render(key_template, request), _render(val_template, request)
            if key and new_key and key != new_key and key in query:
                query[new_key] = query.pop(key)
        for key_template, val_template in self.set:
            key = _render(key_template, request)
            if key:
                query[key] = [_render(val_template, request)]
        for key_template, val_template in self.add:
            key = _render(key_template, request)
            if key:
                query.setdefault(key, []).append(_render(val_template, request))
        for replacement in self.replace:
            key = _render(replacement.key, request)
            targets = list(query) if key == "*" else [key] if key in query else []
            for target in targets:
                query[target] = [replacement.apply(v, request) for v in query[target]]
        for key_template in self.delete:
            query.pop(_render(key_template, request), None)
        store_uri(request, escaped_path(request), encode_query(query))


# -- the handler ----------------------------------------------------------------------


class Rewrite(LeafResource):
    def __init__(self, method: Template | None, steps: list[Any], next: Any) -> None:
        self.method = method
        self.steps = steps
        self.next = next

    def render(self, request: CaddyRequest) -> Any:
        if self.method is not None:
            self._rewrite_method(request)
        for step in self.steps:
            step.apply(request)
        return self.next.render(request)

    def _rewrite_method(self, request: CaddyRequest) -> None:
        assert self.method is not None
        request.method = _render(self.method, request).upper().encode("latin-1", "replace")
        # twisted.web decides from ``method`` whether a body may be sent: answer as the
        # client asked (a HEAD stays bodiless), as Go's server does.
        original = request.original_method

        def restore(req: CaddyRequest) -> None:
            req.method = original

        request.header_hooks.append(restore)


def build(config: ObjectReader, context: Any, next: Any) -> Rewrite:
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
    return Rewrite(Template(method) if method else None, steps, next)
