"""The ``rewrite`` handler: results checked against Caddy 2.6.2 on the same requests."""

from __future__ import annotations

import pytest

from caddytw.config.reader import ObjectReader
from caddytw.handlers.rewrite.handler import build
from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve, serve_resource
from tests.support.memory import memory_server

ECHO = echo("{http.request.method} {http.request.uri}")

# (rewrite config, request target, what Caddy 2.6.2 answered). Each case runs behind
# a "strip_path_prefix: /N" rewrite as the recording did (which also cleans the path).
CADDY_CASES = [
    ({"uri": "/new"}, "/a/b?x=1&y=2", "GET /new?x=1&y=2"),
    ({"uri": "/new"}, "/a%2Fb/c%20d?q=a+b", "GET /new?q=a+b"),
    ({"uri": "/new"}, "/API/v1//x/", "GET /new"),
    ({"uri": "/new?k=v"}, "/a/b?x=1&y=2", "GET /new?k=v"),
    ({"uri": "/new?k=v"}, "/a%2Fb/c%20d?q=a+b", "GET /new?k=v"),
    ({"uri": "/new?k=v"}, "/API/v1//x/", "GET /new?k=v"),
    ({"uri": "?"}, "/a/b?x=1&y=2", "GET /a/b"),
    ({"uri": "?"}, "/a%2Fb/c%20d?q=a+b", "GET /a%2Fb/c%20d"),
    ({"uri": "?"}, "/API/v1//x/", "GET /API/v1/x/"),
    ({"uri": "?{http.request.uri.query}&added=1"}, "/a/b?x=1&y=2", "GET /a/b?x=1&y=2&added=1"),
    (
        {"uri": "?{http.request.uri.query}&added=1"},
        "/a%2Fb/c%20d?q=a+b",
        "GET /a%2Fb/c%20d?q=a+b&added=1",
    ),
    ({"uri": "?{http.request.uri.query}&added=1"}, "/API/v1//x/", "GET /API/v1/x/?added=1"),
    ({"uri": "/x{http.request.uri}"}, "/a/b?x=1&y=2", "GET /x/a/b?x=1&y=2"),
    ({"uri": "/x{http.request.uri}"}, "/a%2Fb/c%20d?q=a+b", "GET /x/a/b/c%20d?q=a+b"),
    ({"uri": "/x{http.request.uri}"}, "/API/v1//x/", "GET /x/API/v1/x/"),
    (
        {"uri": "/p{http.request.uri.path}?o={http.request.uri.query}"},
        "/a/b?x=1&y=2",
        "GET /p/a/b?o=x%3D1%26y%3D2",
    ),
    (
        {"uri": "/p{http.request.uri.path}?o={http.request.uri.query}"},
        "/a%2Fb/c%20d?q=a+b",
        "GET /p/a/b/c%20d?o=q%3Da%2Bb",
    ),
    (
        {"uri": "/p{http.request.uri.path}?o={http.request.uri.query}"},
        "/API/v1//x/",
        "GET /p/API/v1/x/?o=",
    ),
    ({"uri": "/sp ace?a b=c d"}, "/a/b?x=1&y=2", "GET /sp%20ace?a b=c d"),
    ({"uri": "/sp ace?a b=c d"}, "/a%2Fb/c%20d?q=a+b", "GET /sp%20ace?a b=c d"),
    ({"uri": "/sp ace?a b=c d"}, "/API/v1//x/", "GET /sp%20ace?a b=c d"),
    (
        {"uri": "/idx.php?{http.request.uri.query}&p={http.request.uri.path}"},
        "/a/b?x=1&y=2",
        "GET /idx.php?x=1&y=2&p=%2Fa%2Fb",
    ),
    (
        {"uri": "/idx.php?{http.request.uri.query}&p={http.request.uri.path}"},
        "/a%2Fb/c%20d?q=a+b",
        "GET /idx.php?q=a+b&p=%2Fa%2Fb%2Fc+d",
    ),
    (
        {"uri": "/idx.php?{http.request.uri.query}&p={http.request.uri.path}"},
        "/API/v1//x/",
        "GET /idx.php?p=%2FAPI%2Fv1%2Fx%2F",
    ),
    ({"strip_path_prefix": "/api"}, "/a/b?x=1&y=2", "GET /a/b?x=1&y=2"),
    ({"strip_path_prefix": "/api"}, "/a%2Fb/c%20d?q=a+b", "GET /a%2Fb/c%20d?q=a+b"),
    ({"strip_path_prefix": "/api"}, "/API/v1//x/", "GET /v1/x/"),
    ({"strip_path_suffix": "/x"}, "/a/b?x=1&y=2", "GET /a/b?x=1&y=2"),
    ({"strip_path_suffix": "/x"}, "/a%2Fb/c%20d?q=a+b", "GET /a%2Fb/c%20d?q=a+b"),
    ({"strip_path_suffix": "/x"}, "/API/v1//x/", "GET /API/v1/x/"),
    ({"strip_path_prefix": "/a%2F"}, "/a/b?x=1&y=2", "GET /a/b?x=1&y=2"),
    ({"strip_path_prefix": "/a%2F"}, "/a%2Fb/c%20d?q=a+b", "GET b/c%20d?q=a+b"),
    ({"strip_path_prefix": "/a%2F"}, "/API/v1//x/", "GET /API/v1/x/"),
    ({"uri_substring": [{"find": "/a", "replace": "/zz"}]}, "/a/b?x=1&y=2", "GET /zz/b?x=1&y=2"),
    (
        {"uri_substring": [{"find": "/a", "replace": "/zz"}]},
        "/a%2Fb/c%20d?q=a+b",
        "GET /zz%2Fb/c%20d?q=a+b",
    ),
    ({"uri_substring": [{"find": "/a", "replace": "/zz"}]}, "/API/v1//x/", "GET /API/v1/x/"),
    (
        {"uri_substring": [{"find": "1", "replace": "9", "limit": 1}]},
        "/a/b?x=1&y=2",
        "GET /a/b?x=9&y=2",
    ),
    (
        {"uri_substring": [{"find": "1", "replace": "9", "limit": 1}]},
        "/a%2Fb/c%20d?q=a+b",
        "GET /a%2Fb/c%20d?q=a+b",
    ),
    (
        {"uri_substring": [{"find": "1", "replace": "9", "limit": 1}]},
        "/API/v1//x/",
        "GET /API/v9/x/",
    ),
    (
        {"path_regexp": [{"find": "^/(a|api)/(.*)$", "replace": "/$2/${1}x"}]},
        "/a/b?x=1&y=2",
        "GET /b/?x=1&y=2",
    ),
    (
        {"path_regexp": [{"find": "^/(a|api)/(.*)$", "replace": "/$2/${1}x"}]},
        "/a%2Fb/c%20d?q=a+b",
        "GET /a%2Fb/c%20d?q=a+b",
    ),
    (
        {"path_regexp": [{"find": "^/(a|api)/(.*)$", "replace": "/$2/${1}x"}]},
        "/API/v1//x/",
        "GET /API/v1/x/",
    ),
    ({"path_regexp": [{"find": "x*", "replace": "-"}]}, "/a/b?x=1&y=2", "GET -/-a-/-b-?x=1&y=2"),
    (
        {"path_regexp": [{"find": "x*", "replace": "-"}]},
        "/a%2Fb/c%20d?q=a+b",
        "GET -/-a-/-b-/-c-%20-d-?q=a+b",
    ),
    ({"path_regexp": [{"find": "x*", "replace": "-"}]}, "/API/v1//x/", "GET -/-A-P-I-/-v-1-/-/-"),
    ({"method": "post"}, "/a/b?x=1&y=2", "POST /a/b?x=1&y=2"),
    ({"method": "post"}, "/a%2Fb/c%20d?q=a+b", "POST /a%2Fb/c%20d?q=a+b"),
    ({"method": "post"}, "/API/v1//x/", "POST /API/v1/x/"),
]


def caddy_routes():
    return [
        chain(
            {"handler": "rewrite", "strip_path_prefix": f"/{index}"},
            {"handler": "rewrite", **config},
            ECHO,
            match=[{"path": [f"/{index}/*"]}],
        )
        for index, config in enumerate(unique_configs())
    ]


def unique_configs():
    configs = []
    for config, _, _ in CADDY_CASES:
        if config not in configs:
            configs.append(config)
    return configs


@pytest.fixture(scope="module")
def caddy_server():
    return memory_server(caddy_routes())


@pytest.mark.parametrize(("config", "target", "expected"), CADDY_CASES)
def test_same_uri_as_caddy(caddy_server, config, target, expected):
    index = unique_configs().index(config)
    response = caddy_server.request("GET", f"/{index}{target}")
    assert response.body.decode() == expected


def rewrite(**fields):
    return {"handler": "rewrite", **fields}


def test_path_placeholders_see_the_rewritten_uri():
    server = serve(
        rewrite(uri="/new/{http.request.uri.path.1}?q=1"),
        echo("{http.request.uri.path}|{http.request.uri.query}|{http.request.orig_uri}"),
    )
    assert server.request("GET", "/a/b?x=y").body == b"/new/b|q=1|/a/b?x=y"


def test_query_injected_by_a_placeholder_is_not_expanded_again():
    server = serve(
        rewrite(uri="/p{http.request.header.X-Path}?"),
        echo("{http.request.uri}"),
    )
    response = server.request("GET", "/", headers={"X-Path": "/x?k={env.HOME}"})
    assert response.body == b"/p/x?k=%7Benv.HOME%7D"


def test_strip_prefix_without_leading_slash_is_anchored_at_root():
    # Newer Caddy versions prepend the slash (2.6.2 did not strip at all).
    server = serve(rewrite(strip_path_prefix="api/v1"), ECHO)
    assert server.request("GET", "/api/v1/x").body == b"GET /x"


def test_strip_prefix_is_case_insensitive_and_decodes_escapes():
    server = serve(rewrite(strip_path_prefix="/Ab"), ECHO)
    assert server.request("GET", "/%61B/c").body == b"GET /c"


def test_strip_whole_path_gives_root():
    server = serve(rewrite(strip_path_prefix="/api"), ECHO)
    assert server.request("GET", "/api").body == b"GET /"


def test_query_operations():
    server = serve(
        rewrite(
            query={
                "rename": [{"key": "x", "val": "xx"}, {"key": "missing", "val": "m"}],
                "set": [{"key": "s", "val": "{http.request.method}"}],
                "add": [{"key": "y", "val": "3"}],
                "replace": [
                    {"key": "*", "search": "1", "replace": "one"},
                    {"key": "y", "search_regexp": "^(\\d)$", "replace": "<$1>"},
                ],
                "delete": ["z"],
            }
        ),
        ECHO,
    )
    response = server.request("GET", "/p?x=1&y=2&z=9&z=8&a=b+c")
    assert response.body == b"GET /p?a=b+c&s=GET&xx=one&y=%3C2%3E&y=%3C3%3E"


def test_query_operations_on_empty_query():
    server = serve(rewrite(query={"add": [{"key": "k", "val": "v w"}]}), ECHO)
    assert server.request("GET", "/p").body == b"GET /p?k=v+w"


def test_method_rewrite_keeps_a_head_answer_bodiless():
    server = serve(rewrite(method="get"), echo("{http.request.method} body"))
    head = server.request("HEAD", "/")
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-length") == str(len(b"GET body"))
    assert server.request("POST", "/").body == b"GET body"


def test_method_rewrite_to_head_still_sends_the_body_to_a_get():
    server = serve(rewrite(method="HEAD"), echo("{http.request.method} body"))
    assert server.request("GET", "/").body == b"HEAD body"


def test_rewrite_is_seen_by_later_routes_matchers():
    routes = [
        chain(rewrite(uri="/b")),
        chain(echo("matched b"), match=[{"path": ["/b"]}]),
        chain(echo("not b")),
    ]
    assert memory_server(routes).request("GET", "/a").body == b"matched b"


@pytest.mark.parametrize(
    ("handler", "path", "message"),
    [
        (rewrite(path_regexp=[{"find": ""}]), "path_regexp[0].find", "cannot be empty"),
        (rewrite(path_regexp=[{"find": "("}]), "path_regexp[0].find", "invalid regexp"),
        (rewrite(uri_substring=[{"find": "a", "limit": "x"}]), "uri_substring[0].limit", "integer"),
        (
            rewrite(query={"set": [{"key": "a", "value": "b"}]}),
            "query.set[0].value",
            "unknown field",
        ),
        (
            rewrite(query={"replace": [{"key": "a", "search_regexp": "["}]}),
            "query.replace[0].search_regexp",
            "invalid regexp",
        ),
        (rewrite(uri=5), "uri", "expected a string"),
    ],
)
def test_config_errors(handler, path, message):
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    errors = validate(config)
    assert len(errors) == 1
    assert errors[0].startswith(f"apps.http.servers.s.routes[0].handle[0].{path}: ")
    assert message in errors[0]


def test_non_ascii_config_text_goes_out_as_utf8():
    class RawTarget:
        def render(self, request):
            return request.uri

    handler = build(ObjectReader({"uri": "/caf\u00e9?name=\u65e5\u672c"}, "r"), None, RawTarget())
    response = serve_resource(handler).request("GET", "/")
    assert response.body == "/caf%C3%A9?name=\u65e5\u672c".encode()
