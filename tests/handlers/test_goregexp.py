"""Go's regexp template expansion and ReplaceAllString semantics."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.config.errors import ConfigError
from caddytw.http.goregexp import compile_go, expand, replace_all


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$1", "ab"),
        ("${1}", "ab"),
        ("$2-$1", "cd-ab"),
        ("${name}", "cd"),
        ("$name", "cd"),
        ("$1x", ""),  # Go reads the longest name: ${1x}, which does not exist
        ("${1}x", "abx"),
        ("$$1", "$1"),
        ("$", "$"),
        ("${1", "${1"),  # malformed: kept as written
        ("$-", "$-"),
        ("$9", ""),
        ("$01", ""),  # leading zero is not a number, and no group has that name
        ("$0", "abcd"),
        ("no refs", "no refs"),
    ],
)
def test_expand(template, expected):
    match = re.search(r"(ab)(?P<name>cd)", "xxabcdyy")
    assert match is not None
    assert expand(template, match) == expected


@pytest.mark.parametrize(
    ("pattern", "text", "template", "expected"),
    [
        # Values produced by Go's regexp.ReplaceAllString.
        ("x*", "abxd", "-", "-a-b-d-"),
        ("a*", "baaac", "X", "XbXcX"),
        ("", "abc", "-", "-a-b-c-"),
        ("b", "abcb", "[$0]", "a[b]c[b]"),
        ("^/(a|api)/(.*)$", "/api/v1/x", "/$2/${1}x", "/v1/x/apix"),
        ("(?P<y>\\d{4})", "in 2024 and 1999", "<$y>", "in <2024> and <1999>"),
        ("q", "abc", "z", "abc"),
    ],
)
def test_replace_all_matches_go(pattern, text, template, expected):
    assert replace_all(re.compile(pattern), text, template) == expected


@settings(max_examples=60, deadline=None)
@given(st.text("abcx/", max_size=20), st.sampled_from(["a", "bc", "x+", "[ab]/", "c|/a"]))
def test_replace_all_equals_re_sub_for_patterns_without_empty_matches(text, pattern):
    regex = re.compile(pattern)
    assert replace_all(regex, text, "<$0>") == regex.sub(lambda m: f"<{m.group(0)}>", text)


def test_compile_go_reports_the_path():
    with pytest.raises(ConfigError) as caught:
        compile_go("(unclosed", "a.b.find")
    assert caught.value.path == "a.b.find"
    assert compile_go(r"end\z", "p").search("the end")
