"""Header operations and the response matcher, on twisted Headers without a server."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.http.headerops import HeaderOps, ResponseHeaderOps, valid_field_name
from caddytw.http.respmatch import ResponseMatcher, status_matches


def headers_of(**fields: list[str]) -> Headers:
    headers = Headers()
    for name, values in fields.items():
        headers.setRawHeaders(name.replace("_", "-").encode(), [v.encode() for v in values])
    return headers


def as_dict(headers: Headers) -> dict[str, list[str]]:
    return {
        name.decode().lower(): [v.decode() for v in values]
        for name, values in headers.getAllRawHeaders()
    }


def test_set_joins_values_and_replaces_existing():
    headers = headers_of(X_A=["old1", "old2"])
    HeaderOps.parse({"set": {"X-A": ["1", "2"]}}, "ops").apply(headers)
    assert as_dict(headers) == {"x-a": ["1,2"]}


def test_add_appends_every_value():
    headers = headers_of(X_A=["old"])
    HeaderOps.parse({"add": {"x-a": ["1", "2"]}}, "ops").apply(headers)
    assert as_dict(headers) == {"x-a": ["old", "1", "2"]}


@pytest.mark.parametrize(
    ("pattern", "remaining"),
    [
        ("X-Foo-Bar", {"x-foo-baz", "x-bar-foo", "server"}),
        ("x-foo-*", {"x-bar-foo", "server"}),
        ("*-foo", {"x-foo-bar", "x-foo-baz", "server"}),
        ("*foo*", {"server"}),
        ("*", set()),
        ("nothing", {"x-foo-bar", "x-foo-baz", "x-bar-foo", "server"}),
    ],
)
def test_delete_forms(pattern, remaining):
    headers = headers_of(X_Foo_Bar=["1"], X_Foo_Baz=["2"], X_Bar_Foo=["3"], Server=["s"])
    HeaderOps.parse({"delete": [pattern]}, "ops").apply(headers)
    assert set(as_dict(headers)) == remaining


def test_delete_all_runs_before_add_and_set():
    headers = headers_of(X_Old=["1"])
    HeaderOps.parse({"delete": ["*"], "add": {"X-New": ["a"]}, "set": {"X-Set": ["b"]}}, "o").apply(
        headers
    )
    assert as_dict(headers) == {"x-new": ["a"], "x-set": ["b"]}


def test_delete_runs_after_set():
    # Caddy's order: add, set, then delete: a field both set and deleted is gone.
    headers = Headers()
    HeaderOps.parse({"set": {"X-A": ["1"]}, "delete": ["X-A"]}, "o").apply(headers)
    assert as_dict(headers) == {}


def test_replace_substring_and_regexp():
    headers = headers_of(X_A=["abc abc"], X_B=["abc"])
    ops = HeaderOps.parse(
        {
            "replace": {
                "x-a": [{"search": "abc", "replace": "Z"}],
                "X-B": [{"search_regexp": "(a)(b)", "replace": "[$2$1${1}]"}],
            }
        },
        "o",
    )
    ops.apply(headers)
    assert as_dict(headers) == {"x-a": ["Z Z"], "x-b": ["[baa]c"]}


def test_replace_star_touches_every_field_and_value():
    headers = headers_of(X_A=["a1", "a2"], X_B=["b1"])
    HeaderOps.parse({"replace": {"*": [{"search_regexp": "\\d", "replace": "#"}]}}, "o").apply(
        headers
    )
    assert as_dict(headers) == {"x-a": ["a#", "a#"], "x-b": ["b#"]}


def test_replacements_apply_in_order():
    headers = headers_of(X_A=["abc"])
    ops = HeaderOps.parse(
        {"replace": {"X-A": [{"search": "a", "replace": "b"}, {"search": "bb", "replace": "X"}]}},
        "o",
    )
    ops.apply(headers)
    assert as_dict(headers) == {"x-a": ["Xc"]}


def test_ops_without_request_keep_placeholders_as_written():
    headers = Headers()
    HeaderOps.parse({"set": {"X-A": ["{http.request.host}"]}}, "o").apply(headers)
    assert as_dict(headers) == {"x-a": ["{http.request.host}"]}


def test_non_latin1_config_value_goes_out_as_utf8():
    headers = Headers()
    HeaderOps.parse({"set": {"X-A": ["snow \u2603"]}}, "o").apply(headers)
    assert headers.getRawHeaders(b"x-a") == ["snow \u2603".encode()]


def test_empty_ops_are_falsy():
    assert not HeaderOps.parse({}, "o")
    assert HeaderOps.parse({"delete": ["x"]}, "o")


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"sett": {}}, "h.sett", "unknown field"),
        ({"set": {"X-A": "v"}}, "h.set.X-A", "expected an array"),
        ({"add": {"X": [1]}}, "h.add.X[0]", "expected a string"),
        ({"delete": "X"}, "h.delete", "expected an array"),
        ({"replace": {"X": [{"search": "a", "search_regexp": "b"}]}}, "h.replace.X[0]", "both"),
        ({"replace": {"X": [{"search_regexp": "("}]}}, "h.replace.X[0].search_regexp", "regexp"),
        ({"replace": {"X": [{"find": "a"}]}}, "h.replace.X[0].find", "unknown field"),
    ],
)
def test_config_errors_name_the_path(data, path, message):
    with pytest.raises(ConfigError) as caught:
        HeaderOps.parse(data, "h")
    assert caught.value.path == path
    assert message in caught.value.message


def test_invalid_field_name_loads_and_is_never_sent():
    """As Caddy: its adapter writes ``{`` as a field name for a ``header {`` block it
    does not know (Caddy's corpus file ``header``); Go drops such fields when writing."""
    ops = HeaderOps.parse({"set": {"{": [""], "Bad Name": ["v"], "Ok": ["1"]}}, "h")
    headers = Headers()
    ops.apply(headers)
    assert as_dict(headers) == {"ok": ["1"]}


def test_regexp_with_placeholder_is_compiled_late():
    # A search_regexp with a placeholder must not be rejected at config time.
    ops = HeaderOps.parse({"replace": {"X": [{"search_regexp": "({x}", "replace": ""}]}}, "h")
    headers = headers_of(X=["keep"])
    ops.apply(headers)  # without a request the template stays as written: invalid, skipped
    assert as_dict(headers) == {"x": ["keep"]}


def test_response_ops_wait_only_when_deferred_or_required():
    assert not ResponseHeaderOps.parse({"set": {"A": ["1"]}}, "r").waits
    assert ResponseHeaderOps.parse({"deferred": True}, "r").waits
    assert ResponseHeaderOps.parse({"require": {"status_code": [200]}}, "r").waits


def test_response_ops_apply_to_response_honours_require():
    ops = ResponseHeaderOps.parse({"require": {"status_code": [4]}, "set": {"X": ["y"]}}, "r")
    ok, missing = Headers(), Headers()
    ops.apply_to_response(404, ok)
    ops.apply_to_response(200, missing)
    assert as_dict(ok) == {"x": ["y"]}
    assert as_dict(missing) == {}


@pytest.mark.parametrize(
    ("actual", "configured", "expected"),
    [(200, 200, True), (204, 2, True), (404, 4, True), (500, 4, False), (404, 40, False)],
)
def test_status_matches(actual, configured, expected):
    assert status_matches(actual, configured) is expected


def test_response_matcher_header_forms():
    matcher = ResponseMatcher.parse(
        {"headers": {"Content-Type": ["text/*", "*json"], "X-Present": [], "X-Absent": None}},
        "m",
    )
    good = headers_of(Content_Type=["text/html"], X_Present=[""])
    assert matcher.matches(200, good)
    assert matcher.matches(200, headers_of(Content_Type=["application/json"], X_Present=["1"]))
    assert not matcher.matches(200, headers_of(Content_Type=["image/png"], X_Present=["1"]))
    assert not matcher.matches(200, headers_of(Content_Type=["text/html"]))
    assert not matcher.matches(
        200, headers_of(Content_Type=["text/html"], X_Present=["1"], X_Absent=["1"])
    )


def test_response_matcher_config_errors():
    with pytest.raises(ConfigError, match=r"m.status_code\[1\]"):
        ResponseMatcher.parse({"status_code": [200, "x"]}, "m")
    with pytest.raises(ConfigError, match=re.escape("m.headers.X")):
        ResponseMatcher.parse({"headers": {"X": "v"}}, "m")
    with pytest.raises(ConfigError, match=re.escape("m.status")):
        ResponseMatcher.parse({"status": [200]}, "m")


names = st.from_regex(r"x-[a-z]{1,6}(-[a-z]{1,6})?", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(names, st.lists(st.text("abc ", max_size=5), min_size=1, max_size=3)))
def test_set_then_read_back(fields):
    headers = Headers()
    HeaderOps.parse({"set": fields}, "o").apply(headers)
    assert as_dict(headers) == {name: [",".join(values)] for name, values in fields.items()}


@settings(max_examples=40, deadline=None)
@given(
    st.sets(names, max_size=8),
    st.sampled_from(["prefix", "suffix", "contains"]),
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=3),
)
def test_wildcard_delete_removes_exactly_the_matching_fields(present, form, piece):
    headers = Headers()
    for name in present:
        headers.setRawHeaders(name.encode(), [b"v"])
    pattern = {"prefix": piece + "*", "suffix": "*" + piece, "contains": "*" + piece + "*"}[form]
    HeaderOps.parse({"delete": [pattern]}, "o").apply(headers)
    test = {
        "prefix": str.startswith,
        "suffix": str.endswith,
        "contains": lambda name, p: p in name,
    }[form]
    assert set(as_dict(headers)) == {name for name in present if not test(name, piece)}


@given(st.text(max_size=12))
def test_valid_field_name_is_an_http_token(name):
    expected = bool(name) and all(
        c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name
    )
    assert valid_field_name(name) is expected
