"""Caddy's response matcher: a status code list and header patterns.

Used by ``headers`` (``response.require``), ``encode`` (``match``) and the reverse proxy
(``handle_response``), always against a response that is about to be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, expect_list, expect_str_list, join_path
from caddytw.http.matchers import wildcard_match


def status_matches(actual: int, configured: int) -> bool:
    """Caddy's ``StatusCodeMatches``: exact, or a one-digit class (``4`` = any 4xx)."""
    if actual == configured:
        return True
    return configured < 100 and configured * 100 <= actual < (configured + 1) * 100


@dataclass(frozen=True)
class ResponseMatcher:
    """``status_code``: any of them (None = any status); ``headers``: every field must
    match; a field given as ``null`` must be absent, ``[]`` must be present."""

    status_codes: tuple[int, ...] | None
    headers: tuple[tuple[bytes, tuple[str, ...] | None], ...]

    @classmethod
    def parse(cls, data: Any, path: str) -> ResponseMatcher:
        reader = ObjectReader(data, path)
        codes_data = reader.raw("status_code")
        codes: tuple[int, ...] | None = None
        if codes_data is not None:
            codes_path = reader.at("status_code")
            items = expect_list(codes_data, codes_path)
            for index, code in enumerate(items):
                if isinstance(code, bool) or not isinstance(code, int) or code < 0:
                    raise ConfigError(join_path(codes_path, index), "expected a status code")
            codes = tuple(items)
        headers_reader = reader.reader("headers")
        headers: list[tuple[bytes, tuple[str, ...] | None]] = []
        for name, patterns in headers_reader.data.items():
            headers_reader.ignore(name)
            field = name.lower().encode("latin-1")
            if patterns is None:
                headers.append((field, None))
            else:
                values = expect_str_list(patterns, headers_reader.at(name))
                headers.append((field, tuple(values)))
        reader.done()
        return cls(codes, tuple(headers))

    def matches(self, status: int, headers: Headers) -> bool:
        if self.status_codes is not None and not any(
            status_matches(status, code) for code in self.status_codes
        ):
            return False
        for field, patterns in self.headers:
            raw = headers.getRawHeaders(field)
            if patterns is None:
                if raw is None:
                    continue
                return False
            if raw is None:
                return False
            if not patterns:
                continue
            values = [value.decode("latin-1") for value in raw]
            if not any(wildcard_match(p, v) for v in values for p in patterns):
                return False
        return True
