"""Lexical path safety: Go's path.Clean, Caddy's SanitizedPathJoin, hide globs."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.handlers.file_server.hide import glob_match, is_hidden, prepare
from caddytw.handlers.file_server.paths import (
    go_base,
    go_clean,
    is_within,
    lookup_refused,
    sanitized_join,
)

segments = st.sampled_from(
    ["..", ".", "", "a", "b", "...", "%2e%2e", "\\", "..\\..", "x/..", "\x00", "é", "~"]
)
paths = st.lists(segments, max_size=12).map("/".join)


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        ("/", "/"),
        ("//a//b/", "/a/b"),
        ("/../a", "/a"),
        ("/a/./b/../c", "/a/c"),
        ("a/../../b", "../b"),
        ("//", "/"),
        ("/..", "/"),
        ("./", "."),
    ],
)
def test_go_clean(path, cleaned):
    assert go_clean(path) == cleaned


@given(paths)
def test_clean_rooted_never_climbs(path):
    cleaned = go_clean("/" + path)
    assert cleaned.startswith("/")
    assert ".." not in cleaned.split("/")
    assert go_clean(cleaned) == cleaned
    # Same answer as posixpath for everything but the leading "//" rule.
    assert cleaned == "/" + posixpath.normpath("/" + path).lstrip("/")


@given(paths, st.sampled_from(["/srv/site", "/srv/site/", "site", "./site", ".", "/", ""]))
def test_join_stays_under_root(path, root):
    joined = sanitized_join(root, path)
    base = go_clean(root or ".")
    stripped = joined.rstrip("/") or "/"
    if base == ".":
        assert stripped.split("/")[0] != ".." and not stripped.startswith("/")
    else:
        assert is_within(stripped, base)


@pytest.mark.parametrize(
    ("root", "path", "joined"),
    [
        ("/srv", "/a.txt", "/srv/a.txt"),
        ("/srv", "/a.txt/", "/srv/a.txt/"),  # keeps the slash: a file is not a directory
        ("/srv", "/", "/srv/"),
        ("/srv", "/../../etc/passwd", "/srv/etc/passwd"),
        ("/srv", "", "/srv"),
        ("", "/x", "x"),
        (".", "/", "./"),
        ("/", "/etc", "/etc"),
    ],
)
def test_sanitized_join(root, path, joined):
    assert sanitized_join(root, path) == joined


def test_go_base():
    assert go_base("/a/b/") == "b"
    assert go_base("/") == "/"
    assert go_base("") == "."
    assert go_base("x") == "x"


def test_lookup_refused():
    assert lookup_refused("/a\x00b")
    assert lookup_refused("/" + "a" * 5000)
    assert not lookup_refused("/a/b")


def test_is_within():
    assert is_within("/srv/site", "/srv/site")
    assert is_within("/srv/site/a", "/srv/site")
    assert not is_within("/srv/sitex/a", "/srv/site")
    assert is_within("/anything", "/")


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("*.json", "x.json", True),
        ("*", "a/b", False),  # * never crosses a separator
        ("?", "/", False),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "ax", False),
        ("x\\*", "x*", True),
        ("x\\*", "xy", False),
        ("[]a]", "a", False),  # bad pattern: Go reports an error, Caddy treats it as no match
        ("[a-]", "a", False),
        ("abc", "abc", True),
        (".hid*", ".hidden", True),
    ],
)
def test_go_glob(pattern, name, matched):
    assert glob_match(pattern, name) is matched


def test_hide_like_caddy():
    patterns = prepare([".git", "*.json", "/srv/site/private", "/srv/site/*.key"])
    assert is_hidden("/srv/site/.git/config", patterns)
    assert is_hidden("/srv/site/a/b.json", patterns)
    assert is_hidden("/srv/site/private", patterns)
    assert is_hidden("/srv/site/private/x/y", patterns)
    assert is_hidden("/srv/site/server.key", patterns)
    assert not is_hidden("/srv/site/privatex", patterns)
    assert not is_hidden("/srv/site/.gitignore", patterns)
    assert not is_hidden("/srv/site/sub/server.key", patterns)
    assert not is_hidden("/srv/site/x.json.gz", patterns)
    assert not is_hidden("/srv/site/x", ())


def test_hide_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_hidden(str(tmp_path / "secret" / "a"), prepare(["./secret"]))
