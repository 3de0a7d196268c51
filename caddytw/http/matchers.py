"""Request matchers with Caddy's semantics; each JSON matcher name builds a predicate.

A matcher set (one JSON object) ANDs its matchers; a route ORs its sets. Building is
config-time work (patterns compiled, CIDRs parsed) so that matching is cheap per request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from caddytw.config.errors import ConfigError
from caddytw.config.ipranges import ip_in, parse_ranges
from caddytw.config.reader import (
    ObjectReader,
    expect_list,
    expect_str,
    expect_str_list,
    join_path,
    type_name,
)
from caddytw.http.gourl import caddy_clean_path
from caddytw.http.interfaces import IMatcherFactory, find_plugins
from caddytw.http.placeholders import Template, resolve

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest

Matcher = Callable[["CaddyRequest"], bool]
MatcherBuilder = Callable[[Any, str], Matcher]


def _rooted(path: str) -> str:
    """Matchers compare rooted paths: ``a/b`` and ``""`` are read as ``/a/b`` and ``/``."""
    return path if path.startswith("/") else "/" + path


def wildcard_match(pattern: str, value: str) -> bool:
    """Caddy's ``*`` forms: ``*``, ``pre*``, ``*suf``, ``*mid*`` or an exact string."""
    if pattern == "*":
        return True
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if starts and ends and len(pattern) > 1:
        return pattern[1:-1] in value
    if ends:
        return value.startswith(pattern[:-1])
    if starts:
        return value.endswith(pattern[1:])
    return value == pattern


def path_pattern_match(pattern: str, path: str) -> bool:
    """One ``path`` matcher pattern against a lowercased, cleaned request path."""
    if "*" not in pattern:
        return path == pattern
    inner = pattern.strip("*")
    if "*" not in inner:
        return wildcard_match(pattern, path)
    # Wildcards in the middle: glob where ``*`` does not cross a slash.
    regex = "^" + "[^/]*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, path) is not None


def build_path(value: Any, path: str) -> Matcher:
    patterns = [p.lower() for p in expect_str_list(value, path)]
    for index, pattern in enumerate(patterns):
        if not pattern:
            raise ConfigError(join_path(path, index), "empty path pattern")

    def match(request: CaddyRequest) -> bool:
        request_path = caddy_clean_path(_rooted(request.decoded_path)).lower()
        return any(path_pattern_match(p, request_path) for p in patterns)

    return match


def host_match(pattern: str, host: str) -> bool:
    """A host pattern where each ``*`` stands for exactly one label."""
    if pattern == host:
        return True
    if "*" not in pattern:
        return False
    pattern_labels, host_labels = pattern.split("."), host.split(".")
    if len(pattern_labels) != len(host_labels):
        return False
    return all(p == "*" or p == h for p, h in zip(pattern_labels, host_labels, strict=True))


def build_host(value: Any, path: str) -> Matcher:
    patterns = [p.lower() for p in expect_str_list(value, path)]

    def match(request: CaddyRequest) -> bool:
        host = request.request_host.lower().rstrip(".")
        return any(host_match(p, host) for p in patterns)

    return match


def build_method(value: Any, path: str) -> Matcher:
    methods = {m.upper().encode("latin-1") for m in expect_str_list(value, path)}
    return lambda request: request.method in methods


def _regexp(value: Any, path: str) -> tuple[str, re.Pattern[str]]:
    reader = ObjectReader(value, path)
    name = reader.text("name")
    pattern = reader.text("pattern")
    reader.done()
    try:
        return name, re.compile(go_regex(pattern))
    except re.error as exc:
        raise ConfigError(join_path(path, "pattern"), f"invalid regexp: {exc}") from None


def go_regex(pattern: str) -> str:
    """Translate the few RE2 spellings Python lacks (``(?P<n>`` is shared; ``\\z``)."""
    return pattern.replace(r"\z", r"\Z")


def record_captures(
    request: CaddyRequest, name: str, match: re.Match[str], prefix: str = "http.regexp."
) -> None:
    """Expose captures as ``{http.regexp.NAME.N}`` / ``{http.regexp.NAME.GROUP}``."""
    values = request.placeholder_values
    stems = [prefix + name + "."] if name else [prefix]
    if name:
        stems.append(prefix)
    for stem in stems:
        values[stem + "0"] = match.group(0)
        for index, group in enumerate(match.groups(), start=1):
            values[stem + str(index)] = group or ""
        for group_name, group in match.groupdict().items():
            values[stem + group_name] = group or ""


def build_path_regexp(value: Any, path: str) -> Matcher:
    name, regex = _regexp(value, path)

    def match(request: CaddyRequest) -> bool:
        found = regex.search(caddy_clean_path(_rooted(request.decoded_path)))
        if found is None:
            return False
        record_captures(request, name, found)
        return True

    return match


def _header_value_match(patterns: list[str], values: list[str]) -> bool:
    return any(wildcard_match(p, v) for p in patterns for v in values)


def build_header(value: Any, path: str) -> Matcher:
    reader = ObjectReader(value, path)
    fields: list[tuple[str, list[str] | None]] = []
    for name, patterns in reader.data.items():
        reader.ignore(name)
        if patterns is None:
            fields.append((name, None))
        else:
            fields.append((name, expect_str_list(patterns, join_path(path, name))))

    def match(request: CaddyRequest) -> bool:
        for name, patterns in fields:
            if name.lower() == "host":
                values = [request.request_hostport] if request.request_hostport else []
            else:
                raw = request.requestHeaders.getRawHeaders(name.encode("latin-1")) or []
                values = [v.decode("latin-1") for v in raw]
            if patterns is None:
                if values:
                    return False
            elif not values or (patterns and not _header_value_match(patterns, values)):
                return False
        return True

    return match


def build_header_regexp(value: Any, path: str) -> Matcher:
    reader = ObjectReader(value, path)
    fields = []
    for name, spec in reader.data.items():
        reader.ignore(name)
        fields.append((name, *_regexp(spec, join_path(path, name))))

    def match(request: CaddyRequest) -> bool:
        for header, name, regex in fields:
            text = (
                request.request_hostport
                if header.lower() == "host"
                else request.header_text(header) or ""
            )
            found = regex.search(text)
            if found is None:
                return False
            record_captures(request, name, found)
        return True

    return match


def build_query(value: Any, path: str) -> Matcher:
    reader = ObjectReader(value, path)
    wanted: dict[str, list[str]] = {}
    for key, values in reader.data.items():
        reader.ignore(key)
        wanted[key] = expect_str_list(values, join_path(path, key))

    def match(request: CaddyRequest) -> bool:
        if not wanted:
            return not request.query_string
        actual = parse_qs(request.query_string, keep_blank_values=True)
        for key, values in wanted.items():
            present = actual.get(key)
            if present is None:
                return False
            if not any(v == "*" or v in present for v in values):
                return False
        return True

    return match


_PROTOCOLS = {"http", "https", "grpc", "http/1.0", "http/1.1", "http/2", "http/2+", "http/3"}


def build_protocol(value: Any, path: str) -> Matcher:
    wanted = expect_str(value, path).lower()
    if wanted not in _PROTOCOLS and not re.fullmatch(r"http/\d(\.\d)?\+?", wanted):
        raise ConfigError(path, f"unrecognized protocol {wanted!r}")

    def match(request: CaddyRequest) -> bool:
        proto = request.proto.lower()
        if wanted == "http":
            return not request.isSecure()
        if wanted == "https":
            return bool(request.isSecure())
        if wanted == "grpc":
            content_type = request.header_text("content-type") or ""
            return content_type.startswith("application/grpc")
        version = proto.removeprefix("http/")
        if wanted.endswith("+"):
            return float(version) >= float(wanted[5:-1])
        return version == wanted[5:] or version == wanted[5:] + ".0"

    return match


def _build_ip(value: Any, path: str, source: Callable[[CaddyRequest], str]) -> Matcher:
    reader = ObjectReader(value, path)
    networks = parse_ranges(reader.array("ranges"), reader.at("ranges"))
    reader.ignore("forwarded")
    reader.done()
    return lambda request: ip_in(source(request), networks)


def client_ip(request: CaddyRequest) -> str:
    """The client's address: the first untrusted hop of X-Forwarded-For when the peer is a
    trusted proxy (server ``trusted_proxies``), else the peer itself."""
    peer = request.remote_host
    server = getattr(getattr(request, "site", None), "caddy_server", None)
    trusted = getattr(server, "trusted_proxies", None)
    if not trusted or not ip_in(peer, trusted):
        return peer
    forwarded = request.header_text("x-forwarded-for")
    if not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not ip_in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def build_remote_ip(value: Any, path: str) -> Matcher:
    return _build_ip(value, path, lambda request: request.remote_host)


def build_client_ip(value: Any, path: str) -> Matcher:
    return _build_ip(value, path, client_ip)


def build_not(value: Any, path: str) -> Matcher:
    sets = [
        build_matcher_set(s, join_path(path, i)) for i, s in enumerate(expect_list(value, path))
    ]
    return lambda request: not any(s(request) for s in sets)


def build_vars(value: Any, path: str) -> Matcher:
    reader = ObjectReader(value, path)
    wanted = []
    for key, values in reader.data.items():
        reader.ignore(key)
        templates = [Template(v) for v in expect_str_list(values, join_path(path, key))]
        wanted.append((key, templates))

    def match(request: CaddyRequest) -> bool:
        for key, values in wanted:
            if key.startswith("{") and key.endswith("}"):
                actual = resolve(request, key[1:-1]) or ""
            else:
                raw = request.caddy_vars.get(key)
                actual = "" if raw is None else str(raw)
            if not any(v.render(request) == actual for v in values):
                return False
        return True

    return match


_TRY_POLICIES = {"first_exist", "smallest_size", "largest_size", "most_recently_modified"}


def build_file(value: Any, path: str) -> Matcher:
    reader = ObjectReader(value, path)
    root = Template(reader.text("root", "{http.vars.root}"))
    try_files = [Template(t) for t in reader.strings("try_files")] or [
        Template("{http.request.uri.path}")
    ]
    policy = reader.text("try_policy", "first_exist") or "first_exist"
    split_path = reader.strings("split_path")
    reader.done()
    if policy not in _TRY_POLICIES:
        raise ConfigError(join_path(path, "try_policy"), f"unknown try_policy {policy!r}")

    def match(request: CaddyRequest) -> bool:
        base = root.render(request) or "."
        candidates = []
        for template in try_files:
            rel = template.render(request)
            if rel.startswith("="):
                # ``=404`` style fallbacks are only meaningful to try_files rewrites.
                continue
            remainder = ""
            for delimiter in split_path:
                index = rel.lower().find(delimiter.lower())
                if index != -1:
                    remainder = rel[index + len(delimiter) :]
                    rel = rel[: index + len(delimiter)]
                    break
            clean = caddy_clean_path(_rooted(rel)).rstrip("/") or "/"
            full = os.path.join(base, clean.lstrip("/"))
            try:
                info = os.stat(full)
            except OSError:
                continue
            is_dir = os.path.isdir(full)
            # Caddy 2.6.2 joins with the trailing slash cleaned away and then wants a
            # directory only where the joined path ends in "/": so a directory never
            # matches (``/`` and ``/sub/`` fall through to ``{path}/index.php``), and
            # ``/a.txt/`` matches the file ``/a.txt`` (both checked against caddy).
            if is_dir:
                continue
            candidates.append((clean, full, info, is_dir, remainder))
            if policy == "first_exist":
                break
        if not candidates:
            return False
        if policy == "smallest_size":
            chosen = min(candidates, key=lambda c: c[2].st_size)
        elif policy == "largest_size":
            chosen = max(candidates, key=lambda c: c[2].st_size)
        elif policy == "most_recently_modified":
            chosen = max(candidates, key=lambda c: c[2].st_mtime)
        else:
            chosen = candidates[0]
        relative, absolute, _, is_dir, remainder = chosen
        values = request.placeholder_values
        values["http.matchers.file.relative"] = relative
        values["http.matchers.file.absolute"] = absolute
        values["http.matchers.file.type"] = "directory" if is_dir else "file"
        values["http.matchers.file.remainder"] = remainder
        return True

    return match


def build_expression(value: Any, path: str) -> Matcher:
    from caddytw.http.celmatcher import build_expression as build_cel

    return build_cel(value, path, MATCHERS)


MATCHERS: dict[str, MatcherBuilder] = {
    "host": build_host,
    "path": build_path,
    "path_regexp": build_path_regexp,
    "method": build_method,
    "header": build_header,
    "header_regexp": build_header_regexp,
    "query": build_query,
    "protocol": build_protocol,
    "remote_ip": build_remote_ip,
    "client_ip": build_client_ip,
    "not": build_not,
    "vars": build_vars,
    "file": build_file,
    "expression": build_expression,
}


def normalize_short_form(value: dict[str, Any], path: str) -> dict[str, Any]:
    """``{"matcher": "path", "paths": [...]}`` (the short form the original design brief's
    sample configs use) as Caddy's ``{"path": [...]}``."""
    if "matcher" not in value:
        return value
    kind = value["matcher"]
    if not isinstance(kind, str):
        raise ConfigError(join_path(path, "matcher"), f"expected a string, got {type_name(kind)}")
    rest = {k: v for k, v in value.items() if k != "matcher"}
    if len(rest) != 1:
        raise ConfigError(path, 'short matcher form needs exactly one field beside "matcher"')
    ((_, argument),) = rest.items()
    return {kind: argument}


def build_matcher_set(value: Any, path: str) -> Matcher:
    """One JSON object of matchers, ANDed together."""
    reader = ObjectReader(value, path, what="object (matcher set)")
    data = normalize_short_form(dict(reader.data), path)
    matchers: list[Matcher] = []
    for name, argument in data.items():
        if name == "@id":
            continue
        builder = MATCHERS.get(name)
        if builder is None:
            plugin = find_plugins(IMatcherFactory).get(name)
            if plugin is None:
                raise ConfigError(join_path(path, name), f"unknown matcher module {name!r}")
            builder = plugin.build
        matchers.append(builder(argument, join_path(path, name)))
    if len(matchers) == 1:
        return matchers[0]
    return lambda request: all(m(request) for m in matchers)
