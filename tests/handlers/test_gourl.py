"""Go's URL escaping, query parsing/encoding and path cleaning."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.http.gourl import (
    caddy_clean_path,
    encode_query,
    escape_path,
    escape_path_keep_slashes,
    go_clean,
    parse_query,
    query_escape,
    query_unescape,
    unescape_path,
)


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        ("/a b/c", "/a%20b/c"),
        ("/a?b#c", "/a%3Fb%23c"),
        ("/$&+,:;=@~-_.", "/$&+,:;=@~-_."),
        ("/!*'()", "/%21%2A%27%28%29"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ("/100%", "/100%25"),
    ],
)
def test_escape_path(path, escaped):
    assert escape_path(path) == escaped


def test_escape_path_keep_slashes_escapes_segment_delimiters():
    assert escape_path_keep_slashes("/a b/c;d,e") == "/a%20b/c%3Bd%2Ce"


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=30))
def test_escape_then_unescape_round_trips(path):
    escaped = escape_path(path)
    assert escaped.isascii()
    assert unescape_path(escaped) == path
    assert unquote_to_bytes(escaped) == path.encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("bad", ["%", "%4", "%zz", "a%g1"])
def test_malformed_escapes_are_rejected(bad):
    assert unescape_path(bad) is None
    assert query_unescape(bad) is None


def test_query_escape_is_go_query_escape():
    assert query_escape("a b&c=d/é~") == "a+b%26c%3Dd%2F%C3%A9~"
    assert query_unescape("a+b%26") == "a b&"
    assert unescape_path("a+b") == "a+b"


def test_parse_query_drops_what_go_drops():
    assert parse_query("a=1&b&&c=%zz&d;e=2&a=3&=x") == {"a": ["1", "3"], "b": [""], "": ["x"]}


def test_encode_query_sorts_keys_and_keeps_value_order():
    assert encode_query({"b": ["2", "1"], "a": ["x y"], "é": ["&"]}) == "a=x+y&b=2&b=1&%C3%A9=%26"


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5), st.lists(st.text(max_size=5), min_size=1, max_size=3)
    )
)
def test_query_encode_parse_round_trip(values):
    assert parse_query(encode_query(values)) == {k: values[k] for k in sorted(values)}


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("", "."),
        ("/", "/"),
        ("//a//b/", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/../a", "/a"),
        ("a/../..", ".."),
        ("a/b/../../..", ".."),
        ("./a", "a"),
    ],
)
def test_go_clean(path, clean):
    assert go_clean(path) == clean


@settings(max_examples=100, deadline=None)
@given(st.text("ab./", max_size=20))
def test_go_clean_properties(path):
    cleaned = go_clean(path)
    assert go_clean(cleaned) == cleaned
    if path.startswith("/"):
        # For rooted paths Go agrees with POSIX normpath, except for a leading "//".
        assert cleaned == "/" + posixpath.normpath(path).lstrip("/")


def test_caddy_clean_path_keeps_trailing_slash_and_optionally_doubled_slashes():
    assert caddy_clean_path("/a//b/../c/") == "/a/c/"
    assert caddy_clean_path("/a//b/../c/", merge_slashes=False) == "/a//c/"
    assert caddy_clean_path("/") == "/"


@given(st.text(alphabet="/ab.", max_size=24))
def test_clean_path_fast_route_is_go_path_clean(path):
    """Rooted paths take posixpath.normpath; it must agree with Go's path.Clean
    (``go_clean``) keeping a trailing slash, as Caddy's CleanPath does."""
    rooted = "/" + path
    expected = go_clean(rooted)
    if expected != "/" and rooted.endswith("/"):
        expected += "/"
    assert caddy_clean_path(rooted) == expected
