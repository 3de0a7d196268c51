"""The ``query`` operations of ``rewrite``: rename, set, add, replace, delete.

The query is parsed as Go's ``URL.Query()`` (malformed pairs dropped) and re-encoded
as ``Values.Encode()`` does: keys sorted, values in order, ``+`` for spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from caddytw.config.reader import ObjectReader, expect_list, join_path
from caddytw.handlers.rewrite.requesturi import escaped_path, fill, raw_query, store_uri
from caddytw.http.goregexp import compile_go, replace_all
from caddytw.http.gourl import encode_query, parse_query
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest


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
            key, new_key = fill(key_template, request), fill(val_template, request)
            if key and new_key and key != new_key and key in query:
                query[new_key] = query.pop(key)
        for key_template, val_template in self.set:
            key = fill(key_template, request)
            if key:
                query[key] = [fill(val_template, request)]
        for key_template, val_template in self.add:
            key = fill(key_template, request)
            if key:
                query.setdefault(key, []).append(fill(val_template, request))
        for replacement in self.replace:
            key = fill(replacement.key, request)
            targets = list(query) if key == "*" else [key] if key in query else []
            for target in targets:
                query[target] = [replacement.apply(v, request) for v in query[target]]
        for key_template in self.delete:
            query.pop(fill(key_template, request), None)
        store_uri(request, escaped_path(request), encode_query(query))
