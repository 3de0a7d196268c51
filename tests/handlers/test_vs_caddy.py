"""The middleware handlers answer like Debian's Caddy 2.6.2 on the same config.

Only behaviour that 2.6.2 shares with current Caddy is compared (current Caddy also
suffixes ETags when encoding, honours ``no-transform``, and has ``query`` rewrites).
Compressed bytes differ between implementations, so encoded bodies are compared after
decoding, and Content-Length only for identity answers small enough for Go to send one.
"""

from __future__ import annotations

import base64
import gzip

import bcrypt
import pytest
import zstandard

from tests.compat.harness import CADDY, Answer, both_servers, fetch
from tests.handlers.helpers import chain, echo

pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
BIG = "compare me " * 200
URI = echo("{http.request.method} {http.request.uri}")


def prefixed(prefix, *handlers):
    return chain(
        {"handler": "rewrite", "strip_path_prefix": prefix},
        *handlers,
        match=[{"path": [prefix + "/*"]}],
        terminal=True,
    )


ROUTES = [
    prefixed(
        "/r1",
        {
            "handler": "rewrite",
            "uri": "/idx.php?{http.request.uri.query}&p={http.request.uri.path}",
        },
        URI,
    ),
    prefixed("/r2", {"handler": "rewrite", "uri": "/x{http.request.uri}"}, URI),
    prefixed(
        "/r3",
        {"handler": "rewrite", "path_regexp": [{"find": "^/(\\w+)/(.*)$", "replace": "/$2/$1"}]},
        URI,
    ),
    prefixed(
        "/r4",
        {"handler": "rewrite", "uri_substring": [{"find": "a", "replace": "A", "limit": 2}]},
        URI,
    ),
    prefixed("/r5", {"handler": "rewrite", "strip_path_suffix": ".html", "method": "put"}, URI),
    prefixed(
        "/h",
        {
            "handler": "headers",
            "request": {
                "add": {"X-In": ["added"]},
                "replace": {"X-Rep": [{"search_regexp": "(\\d+)", "replace": "<$1>"}]},
            },
            "response": {
                "set": {"X-Now": ["{http.request.header.X-In}"]},
                "add": {"X-Multi": ["a", "b"]},
            },
        },
        {
            "handler": "headers",
            "response": {"deferred": True, "delete": ["X-Del*"], "set": {"X-Late": ["late"]}},
        },
        {
            "handler": "headers",
            "response": {"require": {"status_code": [2]}, "set": {"X-Ok": ["yes"]}},
        },
        echo(
            "{http.request.header.X-In}|{http.request.header.X-Rep}", headers={"X-Delete-Me": ["x"]}
        ),
    ),
    prefixed(
        "/enc",
        {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}}, "prefer": ["zstd", "gzip"]},
        echo(BIG),
    ),
    prefixed("/small", {"handler": "encode", "encodings": {"gzip": {}}}, echo("tiny")),
    prefixed(
        "/png",
        {"handler": "encode", "encodings": {"gzip": {}}},
        echo(BIG, headers={"Content-Type": ["image/png"]}),
    ),
    prefixed(
        "/auth",
        {
            "handler": "authentication",
            "providers": {
                "http_basic": {"accounts": [{"username": "bob", "password": HASH}], "realm": "Zone"}
            },
        },
        echo("hi {http.auth.user.id}"),
    ),
    prefixed(
        "/map",
        {
            "handler": "map",
            "source": "{http.request.uri.path}",
            "destinations": ["{out}"],
            "mappings": [
                {"input": "/known", "outputs": ["mapped {http.request.method}"]},
                {"input_regexp": "^/n(\\d+)$", "outputs": ["num $1"]},
            ],
            "defaults": ["default"],
        },
        echo("{out}"),
    ),
    prefixed("/fail", {"handler": "error", "error": "nope", "status_code": 409}),
]
CONFIG = {
    "apps": {
        "http": {
            "servers": {
                "s": {
                    "listen": [],
                    "routes": ROUTES,
                    "errors": {
                        "routes": [chain(echo("E {http.error.status_code} {http.error.message}"))]
                    },
                }
            }
        }
    }
}


def auth(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CASES = [
    ("GET", "/r1/a/b?x=1&y=2", {}),
    ("GET", "/r1/a%2Fb/c%20d?q=a+b", {}),
    ("GET", "/r2/a/b?x=1", {}),
    ("GET", "/r3/one/two/three", {}),
    ("GET", "/r4/banana?a=a", {}),
    ("GET", "/r5/page.html", {}),
    ("GET", "/h/", {"X-Rep": "v12 and 3"}),
    ("GET", "/enc/", {"Accept-Encoding": "gzip"}),
    ("GET", "/enc/", {"Accept-Encoding": "gzip, zstd"}),
    ("GET", "/enc/", {"Accept-Encoding": "zstd;q=0.5, gzip"}),
    ("GET", "/enc/", {"Accept-Encoding": "br"}),
    ("HEAD", "/enc/", {"Accept-Encoding": "gzip"}),
    ("GET", "/enc/", {}),
    ("GET", "/small/", {"Accept-Encoding": "gzip"}),
    ("GET", "/png/", {"Accept-Encoding": "gzip"}),
    ("GET", "/auth/", {}),
    ("GET", "/auth/", auth("bob", "secret")),
    ("GET", "/auth/", auth("bob", "wrong")),
    ("GET", "/auth/", auth("eve", "secret")),
    ("GET", "/map/known", {}),
    ("GET", "/map/n42", {}),
    ("GET", "/map/other", {}),
    ("GET", "/fail/", {}),
]
HEADERS = (
    "content-type",
    "vary",
    "www-authenticate",
    "content-encoding",
    "x-now",
    "x-multi",
    "x-late",
    "x-ok",
    "x-delete-me",
)


def normalized(answer: Answer) -> dict:
    coding = answer.headers.get("content-encoding")
    body = answer.body
    if coding == "gzip" and body:
        body = gzip.decompress(body)
    elif coding == "zstd" and body:
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    result = answer.comparable(HEADERS)
    result["body"] = body
    if coding is None and len(body) < 2048:
        # Go sends a length for bodies that fit its 2 KiB buffer, chunks bigger ones.
        result["content-length"] = answer.headers.get("content-length")
    return result


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    with both_servers(CONFIG, tmp_path_factory.mktemp("vs-caddy")) as pair:
        yield pair


@pytest.mark.parametrize(("method", "target", "headers"), CASES)
def test_same_answer_as_caddy(ports, method, target, headers):
    caddy_port, ours_port = ports
    theirs = fetch(caddy_port, method, target, headers)
    ours = fetch(ours_port, method, target, headers)
    assert normalized(ours) == normalized(theirs)
