"""No request path, however encoded, reaches a file outside the root.

A corpus of traversal tricks is sent through the real HTTP parser, and hypothesis
composes more from dangerous pieces. The tree has a secret beside the root and
symlinks pointing at it; the secret's bytes must never come back.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.file_server.tree import SECRET, make_tree
from tests.support.memory import memory_server


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    site = make_tree(base)
    server = memory_server(
        [{"handle": [{"handler": "file_server", "root": str(site), "browse": {}}]}]
    )
    return base, site, server


SYMLINKS = ("escape", "escdir", "sublink")


def hostile_paths(base):
    abs_secret = str(base / "outside" / "secret.txt")
    return [
        "/../outside/secret.txt",
        "/../../outside/secret.txt",
        "/..%2foutside%2fsecret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/outside/secret.txt",
        "/%2e%2e%2foutside%2fsecret.txt",
        "/.%2e/outside/secret.txt",
        "/%2e./outside/secret.txt",
        "/..%5coutside%5csecret.txt",
        "/..\\outside\\secret.txt",
        "/%5c..%5coutside%5csecret.txt",
        "/./../outside/secret.txt",
        "//../outside/secret.txt",
        "/.../outside/secret.txt",
        "/....//outside/secret.txt",
        "/%252e%252e/outside/secret.txt",
        "/..%252foutside%252fsecret.txt",
        "/%c0%ae%c0%ae/outside/secret.txt",
        "/%c0%ae%c0%ae%c0%afoutside%c0%afsecret.txt",
        "/%e0%80%ae%e0%80%ae/outside/secret.txt",
        "/..%c0%afoutside%c0%afsecret.txt",
        "/..%c1%9coutside%c1%9csecret.txt",
        "/%uff0e%uff0e/outside/secret.txt",
        "/%ef%bc%8e%ef%bc%8e/outside/secret.txt",
        "/%00../outside/secret.txt",
        "/..%00/outside/secret.txt",
        "/outside/secret.txt%00.html",
        "/..%0d%0a/outside/secret.txt",
        "/..;/outside/secret.txt",
        "/sub/../../outside/secret.txt",
        "/sub/%2e%2e/%2e%2e/outside/secret.txt",
        "/sub/./../../outside/secret.txt",
        "/sub//../../outside/secret.txt",
        "/sub/..%2f..%2foutside/secret.txt",
        "/" + "../" * 60 + "outside/secret.txt",
        "/" + "%2e%2e%2f" * 60 + "outside/secret.txt",
        "/" + "a/" * 3000 + "x",
        "/" + "x" * 5000,
        "/%2F..%2F..%2Foutside%2Fsecret.txt",
        "/..//..//outside//secret.txt",
        "/../site/../outside/secret.txt",
        "/~/../outside/secret.txt",
        abs_secret,
        "/" + abs_secret,
        "/%2f" + abs_secret.lstrip("/").replace("/", "%2f"),
        "/escape.txt",
        "/abs-escape",
        "/escdir/secret.txt",
        "/escdir/",
        "/escdir",
        "/escdir/..%2f..%2foutside/secret.txt",
        "/escdir/%2e%2e/outside/secret.txt",
        "/sublink/../../outside/secret.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/..?/outside/secret.txt",
        "http://evil.example/../outside/secret.txt",
    ]


def test_corpus_is_large(tree):
    assert len(hostile_paths(tree[0])) >= 50


def test_no_hostile_path_escapes(tree):
    base, _, server = tree
    for path in hostile_paths(base):
        response = server.request("GET", path)
        assert SECRET not in response.body, path
        assert b"root:" not in response.body, path
        assert response.status in (200, 308, 400, 404), (path, response.status)
        assert b"secret.txt" not in response.body or response.status != 200, path


def test_lexical_cleaning_alone_keeps_paths_inside(tree):
    """With symlinks allowed out, the join itself must still never climb above root."""
    base, site, _ = tree
    permissive = memory_server(
        [{"handle": [{"handler": "file_server", "root": str(site), "allow_symlink_escape": True}]}]
    )
    for path in hostile_paths(base):
        if any(name in path for name in SYMLINKS):
            continue
        assert SECRET not in permissive.request("GET", path).body, path


pieces = st.sampled_from(
    [
        "..",
        ".",
        "%2e%2e",
        "%2E%2e",
        ".%2e",
        "%2f",
        "%2F",
        "/",
        "//",
        "\\",
        "%5c",
        "%00",
        "outside",
        "secret.txt",
        "sub",
        "escdir",
        "escape.txt",
        "sublink",
        "site",
        "%c0%ae",
        "%252e",
        ";",
        "~",
        "%20",
        "?",
        "#",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(pieces, max_size=14))
def test_composed_paths_never_escape(tree, parts):
    _, _, server = tree
    response = server.request("GET", "/" + "".join(parts))
    assert SECRET not in response.body
    assert response.status in (200, 308, 400, 404)
