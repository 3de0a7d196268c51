"""The one-open fast path for plain files and the caches behind it.

The fast path must answer exactly as the full lookup would: what it remembers (path
joins, validators, types) is a pure function of its inputs, and what it decides about
the disk (regular file, inside the root) is decided afresh on every request.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.handlers.file_server.content_types import content_type_for
from caddytw.handlers.file_server.paths import (
    MAX_PATH_BYTES,
    direct_child,
    go_clean,
    lookup_refused,
    sanitized_join,
)
from tests.support.memory import memory_server

segments = st.sampled_from(["..", ".", "", "a", "b.txt", "...", "\\", "x/..", "é", "~"])
paths = st.lists(segments, max_size=8).map("/".join)
plain_roots = st.sampled_from(["/srv/site", "/srv/site/", "//srv//site", "site", "./site", "."])


@given(paths, plain_roots)
def test_direct_child_is_one_clean_component(path, root):
    """For a root without ``..``, a joined path is a direct child exactly when the
    cleaned request path is one name and was not asked for as a directory."""
    cleaned = go_clean("/" + path)
    one_name = cleaned != "/" and cleaned.count("/") == 1
    joined = sanitized_join(root, path)
    assert direct_child(root, joined) == (one_name and not path.endswith("/"))


@given(paths, st.sampled_from(["/srv/link/..", "..", "../site", "a/../b", "/.."]))
def test_roots_with_dotdot_never_take_the_shortcut(path, root):
    """``link/..`` is not what cleaning makes of it when ``link`` is a symlink."""
    assert not direct_child(root, sanitized_join(root, path))


@pytest.mark.parametrize(
    ("root", "filename", "expected"),
    [
        ("/srv", "/srv/a.txt", True),
        ("/", "/etc", True),
        ("/srv", "/srv/a/b.txt", False),
        ("/srv", "/srvx/a.txt", False),
        ("/srv", "/srv/", False),
        ("/srv", "/srv", False),
        (".", "a.txt", True),
        ("", "a.txt", True),
        (".", "/a.txt", False),
    ],
)
def test_direct_child_examples(root, filename, expected):
    assert direct_child(root, filename) is expected


@given(st.text(alphabet=st.sampled_from("a/é€😀\x00\udcff"), max_size=MAX_PATH_BYTES // 2 + 50))
def test_lookup_refused_matches_its_definition(path):
    """The length shortcut never changes the answer."""
    expected = "\x00" in path or len(os.fsencode(path)) > MAX_PATH_BYTES
    assert lookup_refused(path) is expected


def test_content_type_with_and_without_host_database():
    assert content_type_for("/srv/a.CSS") == "text/css; charset=utf-8"
    assert content_type_for("/srv/a.CSS") == content_type_for("/other/b.css")
    assert content_type_for("/srv/noext") is None
    assert content_type_for("/srv/x.foo", extra={".foo": "text/x-foo"}) == (
        "text/x-foo; charset=utf-8"
    )


# -- end to end, in memory -------------------------------------------------------------


@pytest.fixture
def layout(tmp_path):
    site, outside = tmp_path / "site", tmp_path / "outside"
    (site / "dir").mkdir(parents=True)
    outside.mkdir()
    (site / "f.txt").write_bytes(b"inside\n")
    (site / "dir" / "f.txt").write_bytes(b"inside dir\n")
    (site / "dir" / "index.html").write_bytes(b"<p>index</p>\n")
    (outside / "f.txt").write_bytes(b"SECRET\n")
    server = memory_server([{"handle": [{"handler": "file_server", "root": str(site)}]}])
    return site, outside, server


@pytest.mark.parametrize("path", ["/f.txt", "/dir/f.txt"])
def test_swapping_in_an_escaping_symlink_is_noticed(layout, path):
    """Nothing about containment is remembered between requests."""
    site, outside, server = layout
    assert server.request("GET", path).status == 200
    target = site / path.lstrip("/")
    target.unlink()
    target.symlink_to(outside / "f.txt")
    response = server.request("GET", path)
    assert response.status == 404 and b"SECRET" not in response.body


def test_swapping_a_directory_for_an_escaping_symlink_is_noticed(layout):
    site, outside, server = layout
    assert server.request("GET", "/dir/f.txt").body == b"inside dir\n"
    shutil.rmtree(site / "dir")
    (site / "dir").symlink_to(outside)
    response = server.request("GET", "/dir/f.txt")
    assert response.status == 404 and b"SECRET" not in response.body


def test_symlink_in_root_to_a_file_inside_is_served(layout):
    """``O_NOFOLLOW`` refuses it; the full check then finds it inside."""
    site, _, server = layout
    (site / "alias.txt").symlink_to("dir/f.txt")
    assert server.request("GET", "/alias.txt").body == b"inside dir\n"


def test_validators_follow_the_file(layout):
    site, _, server = layout
    first = server.request("GET", "/f.txt")
    os.utime(site / "f.txt", (1_600_000_000, 1_600_000_000))
    (site / "f.txt").write_bytes(b"changed, longer\n")
    os.utime(site / "f.txt", (1_600_000_000, 1_600_000_000))
    second = server.request("GET", "/f.txt")
    assert second.body == b"changed, longer\n"
    assert second.header("etag") != first.header("etag")
    assert second.header("last-modified") == "Sun, 13 Sep 2020 12:26:40 GMT"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/f.txt", 405),
        ("POST", "/missing.txt", 404),
        ("GET", "/dir", 308),
        ("GET", "/f.txt/", 404),
        ("GET", "/dir/index.html", 200),
    ],
)
def test_declined_cases_answer_as_before(layout, method, path, status):
    _, _, server = layout
    assert server.request(method, path, body=b"x" if method == "POST" else b"").status == status


def test_fifo_is_not_served(layout):
    site, _, server = layout
    os.mkfifo(site / "pipe.txt")
    assert server.request("GET", "/pipe.txt").status == 404


def test_precondition_headers_still_count(layout):
    _, _, server = layout
    etag = server.request("GET", "/f.txt").header("etag")
    assert server.request("GET", "/f.txt", headers={"If-None-Match": etag}).status == 304
    assert server.request("GET", "/f.txt", headers={"If-Match": '"nope"'}).status == 412
    ranged = server.request("GET", "/f.txt", headers={"Range": "bytes=0-1"})
    assert (ranged.status, ranged.body) == (206, b"in")
