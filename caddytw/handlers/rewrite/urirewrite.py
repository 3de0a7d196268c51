"""The ``uri`` field of ``rewrite``: replace the parts of the target that are written.

A value's path and query parts are located before placeholders are filled (``?`` alone
clears the query; a fragment is dropped). In the path, ``{http.request.uri.path}`` goes
in escaped; in the query every placeholder value is query-escaped, except
``{http.request.uri.query}`` in key position, which already is; keys are appended,
never merged, as Caddy's ``buildQueryString`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caddytw.handlers.rewrite.requesturi import as_raw, escaped_path, raw_query, store_uri
from caddytw.http.gourl import escape_path, escape_path_keep_slashes, query_escape, unescape_path
from caddytw.http.placeholders import Template, resolve, split_template
from caddytw.http.request import CaddyRequest


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
            # Literal query text goes out as its UTF-8 bytes, as Go sends it.
            components = [(Template(c), d) for c, d in query_components(as_raw(query))]
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
