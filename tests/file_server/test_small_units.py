"""Accept-Encoding preference, content types, listing data."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.handlers.file_server.browse import (
    Entry,
    Listing,
    go_file_mode,
    human_size,
    listing_json,
    make_entry,
    rfc3339_nano,
)
from caddytw.handlers.file_server.content_types import (
    content_type_for,
    parse_globs2,
    parse_mime_types,
    with_charset,
)
from caddytw.handlers.file_server.encodings import accepted_encodings


@pytest.mark.parametrize(
    ("header", "order", "expected"),
    [
        # Observed with caddy 2.6.2 (precompressed gzip + br).
        ("gzip", ["br", "gzip"], ["gzip"]),
        ("gzip, br", ["br", "gzip"], ["br", "gzip"]),
        ("br;q=0.5, gzip", ["br", "gzip"], ["gzip", "br"]),
        ("gzip, br", [], ["gzip", "br"]),  # no server order: the client's
        ("br, gzip", [], ["br", "gzip"]),
        ("gzip;q=0", ["gzip"], []),
        ("", ["gzip"], []),
        (None, ["gzip"], []),
        ("GZIP ; q=1.0", [], ["gzip"]),
        ("gzip;q=2", [], ["gzip"]),  # out of range: treated as 1
        ("gzip;level=1;q=0", [], ["gzip"]),  # only the first parameter counts, as Caddy
        ("zstd;q=0.9, br;q=0.9, gzip;q=0.9", ["gzip", "zstd"], ["gzip", "zstd", "br"]),
    ],
)
def test_accepted_encodings(header, order, expected):
    assert accepted_encodings(header, order) == expected


@given(st.text(max_size=80), st.lists(st.sampled_from(["br", "gzip", "zstd"]), unique=True))
def test_accepted_encodings_total(header, order):
    result = accepted_encodings(header, order)
    assert all(name == name.strip().lower() and name for name in result)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # What caddy 2.6.2 answered on this machine for the same names.
        ("a.html", "text/html; charset=utf-8"),
        ("A.HTML", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("UPPER.PNG", "image/png"),
        ("a.wasm", "application/wasm"),
        ("a.woff2", "font/woff2"),
        ("a.mp4", "video/mp4"),
        ("a.md", "text/markdown; charset=utf-8"),
        ("a.xml", "text/xml; charset=utf-8"),
        ("a.pdf", "application/pdf"),
        ("a.zip", "application/zip"),
        ("a.gz", "application/gzip"),
        ("dir/.json", "application/json"),  # Go's Ext: the whole dot-name
        # Web types where the host database says something else.
        ("a.ts", "video/mp2t"),
        ("a.otf", "font/otf"),
    ],
)
def test_content_types(name, expected):
    assert content_type_for(name) == expected


def test_unknown_extensions_get_no_type():
    assert content_type_for("noext", extra={}) is None
    assert content_type_for("a.unknownext", extra={}) is None
    assert content_type_for("trailing.", extra={}) is None
    assert content_type_for("x.foo", extra={".foo": "text/x-foo"}) == "text/x-foo; charset=utf-8"


def test_system_database_parsers():
    globs = parse_globs2("# c\n50:text/x-a:*.aaa\n40:text/x-b:*.aaa\n50:x/y:README\n50:x/z:*.b*\n")
    assert globs == {".aaa": "text/x-a"}
    types = parse_mime_types("# comment\ntext/x-c c cc # trailing\nimage/x-d d\n")
    assert types == {".c": "text/x-c", ".cc": "text/x-c", ".d": "image/x-d"}
    assert with_charset("text/x; charset=latin-1") == "text/x; charset=latin-1"


def test_go_file_mode():
    assert go_file_mode(stat.S_IFREG | 0o644) == 0o644
    assert go_file_mode(stat.S_IFDIR | 0o755) == 2147484141  # caddy's JSON for a directory
    assert go_file_mode(stat.S_IFLNK | 0o777) == 134218239  # and for a symlink


def test_rfc3339_nano():
    assert rfc3339_nano(1672628645 * 10**9) == "2023-01-02T03:04:05Z"
    assert rfc3339_nano(1672628645 * 10**9 + 83476870) == "2023-01-02T03:04:05.08347687Z"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (9, "9 B"),
        (1000, "1000 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (12345678, "12 MiB"),
        (1 << 30, "1.0 GiB"),
    ],
)
def test_human_size(size, text):
    assert human_size(size) == text


def test_entry_urls_and_names_escape_like_go(tmp_path):
    names = {
        "100%.txt": "./100%25.txt",
        ":colon": "./:colon",
        "<b>.html": "./%3Cb%3E.html",
        "a b.txt": "./a%20b.txt",
        "a#b": "./a%23b",
        "a&b=c;d,e+f$@~": "./a&b=c;d,e+f$@~",
        "q?x": "./q%3Fx",
        "x!'()*": "./x%21%27%28%29%2A",
        "é.txt": "./%C3%A9.txt",
        os.fsdecode(b"bad\xff"): "./bad%FF",
    }
    for name, url in names.items():
        path = tmp_path / name
        path.write_bytes(b"x")
        entry = make_entry(name, path.lstat(), None)
        assert entry.url == url
    bad = make_entry(os.fsdecode(b"bad\xff"), (tmp_path / os.fsdecode(b"bad\xff")).lstat(), None)
    assert bad.name == "bad\ufffd"


def entry(name, size=0, is_dir=False, ns=0):
    return Entry(name + ("/" if is_dir else ""), "./" + name, size, ns, 0, is_dir, False)


def names(listing):
    return [e.name for e in listing.items]


ITEMS = [
    entry("a.txt", 12, ns=3),
    entry("B.txt", 1000, ns=1),
    entry("c", 4096, is_dir=True, ns=2),
    entry("d.txt", 12, ns=5),
    entry("Z", 4096, is_dir=True, ns=4),
]


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("", "", ["c/", "Z/", "a.txt", "B.txt", "d.txt"]),
        ("", "desc", ["d.txt", "B.txt", "a.txt", "Z/", "c/"]),
        ("name", "asc", ["a.txt", "B.txt", "c/", "d.txt", "Z/"]),
        ("size", "asc", ["c/", "Z/", "a.txt", "d.txt", "B.txt"]),
        ("size", "desc", ["B.txt", "a.txt", "d.txt", "Z/", "c/"]),
        ("time", "asc", ["B.txt", "c/", "a.txt", "Z/", "d.txt"]),
        ("bogus", "asc", ["a.txt", "B.txt", "c/", "d.txt", "Z/"]),  # unknown: directory order
    ],
)
def test_sorting(sort, order, expected):
    listing = Listing("x", "/x/", list(ITEMS), True)
    listing.apply_query(sort, order, "", "")
    assert names(listing) == expected


@pytest.mark.parametrize(
    ("limit", "offset", "count", "first"),
    [
        ("2", "", 2, "c/"),
        ("", "4", 1, "d.txt"),
        ("", "5", 0, None),
        ("", "6", 5, "c/"),
        ("9", "", 5, "c/"),
        ("-1", "x", 5, "c/"),
        ("1", "1", 1, "Z/"),
    ],
)
def test_limit_and_offset(limit, offset, count, first):
    listing = Listing("x", "/x/", list(ITEMS), True)
    listing.apply_query("", "", limit, offset)
    assert len(listing.items) == count
    if first:
        assert listing.items[0].name == first


def test_counts_and_breadcrumbs():
    listing = Listing("b", "/a/b/", list(ITEMS), True)
    assert (listing.num_dirs, listing.num_files) == (2, 3)
    assert listing.breadcrumbs() == [("../../", "/"), ("../", "a"), ("./", "b")]
    assert Listing("/", "/", [], False).breadcrumbs() == [("./", "/")]


def test_listing_json_like_go():
    data = listing_json([Entry("<a&b>", "./x", 1, 0, 420, False, False)])
    assert data == (
        b'[{"name":"\\u003ca\\u0026b\\u003e","size":1,"url":"./x",'
        b'"mod_time":"1970-01-01T00:00:00Z","mode":420,"is_dir":false,"is_symlink":false}]\n'
    )
    assert listing_json([]) == b"[]\n"
