"""Path modifiers of ``rewrite``: prefix/suffix stripping, substrings, regexps.

As in Caddy, the path is cleaned first (``//`` kept when the pattern has one) and the
change is made on the escaped path, falling back to the decoded path when the result
does not decode. Prefix comparison is caseless and in decoded space, unless the
pattern itself spells a ``%xx`` escape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path
from caddytw.handlers.rewrite.requesturi import (
    as_raw,
    change_path,
    escaped_path,
    fill,
    raw_query,
    store_uri,
)
from caddytw.http.goregexp import compile_go, replace_all
from caddytw.http.gourl import caddy_clean_path, unescape_path
from caddytw.http.placeholders import Template
from caddytw.http.request import CaddyRequest


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
        prefix = fill(self.prefix, request)
        if not prefix.startswith("/"):
            prefix = "/" + prefix
        merge = "//" not in prefix
        change_path(request, lambda p: trim_path_prefix(caddy_clean_path(p, merge), prefix))


@dataclass(frozen=True)
class StripSuffix:
    suffix: Template

    def apply(self, request: CaddyRequest) -> None:
        suffix = fill(self.suffix, request)
        merge = "//" not in suffix
        change_path(
            request,
            lambda p: _reverse(
                trim_path_prefix(_reverse(caddy_clean_path(p, merge)), _reverse(suffix))
            ),
        )


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
        find = as_raw(fill(self.find, request))
        replace = as_raw(fill(self.replace, request))
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
        replace = fill(self.replace, request)
        change_path(request, lambda p: replace_all(self.find, p, replace))
