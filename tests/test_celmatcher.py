"""CEL ``expression`` matchers: answers as Debian's Caddy on the same Caddyfile, and
config errors at load naming the JSON path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from caddytw.caddyfile.adapter import adapt
from caddytw.config.errors import ConfigError
from caddytw.http.celmatcher import build_expression, translate
from caddytw.http.matchers import MATCHERS
from tests.compat.harness import CADDY, both_servers, fetch

CADDYFILE = """
:80 {
    @api expression {method} == "GET" && {path}.startsWith("/api/")
    respond @api "api"
    @token expression `{http.request.header.X-Token} == "abc" || {query.t} == "abc"`
    respond @token "token"
    @either expression {method} in ["PUT", "DELETE"] && !{path}.endsWith(".txt")
    respond @either "write"
    @size expression size({path}) > 12 && {path}.matches("^/[a-z]+/[0-9]+$")
    respond @size "long"
    respond "other"
}
"""

CASES = [
    ("GET", "/api/x", {}),
    ("POST", "/api/x", {}),
    ("GET", "/x", {"X-Token": "abc"}),
    ("GET", "/x?t=abc", {}),
    ("GET", "/x?t=abd", {"X-Token": "abd"}),
    ("PUT", "/file.bin", {}),
    ("DELETE", "/file.txt", {}),
    ("GET", "/letters/12345", {}),
    ("GET", "/ab/1", {}),
]


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    config, _ = adapt(CADDYFILE)
    with both_servers(config, tmp_path_factory.mktemp("cel")) as both:
        yield both


@pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")
@pytest.mark.parametrize(("method", "target", "headers"), CASES)
def test_expressions_match_as_caddy(ports, method, target, headers) -> None:
    caddy, ours = (fetch(port, method, target, headers) for port in ports)
    assert (ours.status, ours.body) == (caddy.status, caddy.body)


def test_placeholders_become_variables_once_each() -> None:
    text, keys = translate('{a.b} == "x" || {a.b} == {c-d} || {"k": 1} == {}')
    assert text == 'caddy_ph0 == "x" || caddy_ph0 == caddy_ph1 || {"k": 1} == {}'
    assert keys == ("a.b", "c-d")


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        ("{http.request.method} == ", "m.expression", "compiling CEL"),
        ("method == 'GET'", "m.expression", "undeclared reference to method"),
        ("", "m.expression", "non-empty"),
        ({"expr": "1 +", "name": "x"}, "m.expression.expr", "compiling CEL"),
        ("{http.error.status_code} == `402`", "m.expression", "no `backtick` strings"),
    ],
)
def test_bad_expressions_fail_at_load_naming_the_path(value, path, words) -> None:
    with pytest.raises(ConfigError) as error:
        build_expression(value, "m.expression", MATCHERS)
    assert error.value.path == path
    assert words in str(error.value)


def test_validate_reports_the_route_path() -> None:
    from caddytw.server.build import validate

    route = {"match": [{"expression": "{http.request.method} =="}], "handle": []}
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [route]}}}}}
    problems = validate(config)
    assert any("routes[0].match[0].expression" in p for p in problems), problems


MACRO_CADDYFILE = """
:80 {
    root * WWW
    @p expression path('/api/*', '*.json') && method('GET', 'HEAD')
    respond @p "p"
    @h expression header({'X-A': 'v'}) || query({'q': ['1', '2']})
    respond @h "h"
    @r expression path_regexp('ver', '^/v([0-9]+)/') && !host('nope.example')
    respond @r "r {re.ver.1}"
    @hr expression header_regexp('tok', 'X-Token', '^t-([a-z]+)$')
    respond @hr "hr {re.tok.1}"
    @ip expression remote_ip('127.0.0.0/8') && protocol('http') && path('/ip')
    respond @ip "ip"
    @f expression file({'try_files': [{path}, '/index.html']}) && path('/files/*')
    respond @f "f {file_match.relative}"
    @s expression `{path}.startsWith("/s/") && path('*.txt')`
    respond @s "s"
    respond "other"
}
"""

MACRO_CASES = [
    ("GET", "/api/x", {}),
    ("POST", "/api/x", {}),
    ("HEAD", "/a/b.json", {}),
    ("GET", "/x", {"X-A": "v"}),
    ("GET", "/x", {"X-A": "w"}),
    ("GET", "/x?q=2", {}),
    ("GET", "/x?q=3", {}),
    ("GET", "/v12/x", {}),
    ("GET", "/x", {"X-Token": "t-abc"}),
    ("GET", "/x", {"X-Token": "t-ABC"}),
    ("GET", "/ip", {}),
    ("GET", "/files/a.txt", {}),
    ("GET", "/files/none.txt", {}),
    ("GET", "/s/a.txt", {}),
    ("GET", "/s/a.bin", {}),
]


@pytest.fixture(scope="module")
def macro_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    workdir = tmp_path_factory.mktemp("celmacros")
    www = workdir / "www"
    (www / "files").mkdir(parents=True)
    (www / "index.html").write_text("index")
    (www / "files" / "a.txt").write_text("a")
    config, _ = adapt(MACRO_CADDYFILE.replace("WWW", str(www)))
    with both_servers(config, workdir) as both:
        yield both


@pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")
@pytest.mark.parametrize(("method", "target", "headers"), MACRO_CASES)
def test_matcher_functions_match_as_caddy(macro_ports, method, target, headers) -> None:
    caddy, ours = (fetch(port, method, target, headers) for port in macro_ports)
    assert (ours.status, ours.body) == (caddy.status, caddy.body)


def test_matcher_functions_in_memory() -> None:
    """Calls inside strings and method calls are left alone; each call becomes one
    ``caddy_match(N)`` with its literal arguments (bare placeholders as strings)."""
    from caddytw.http.celmatcher import extract_macros

    text, calls = extract_macros(
        "path('/a*') && {x}.path('b') == 'host(c)' || file({'try_files': [{path}]})"
    )
    assert text == "caddy_match(0) && {x}.path('b') == 'host(c)' || caddy_match(1)"
    assert calls == [("path", ["/a*"]), ("file", [{"try_files": ["{path}"]}])]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("path(x)", "arguments of path() must be literals"),
        ("protocol(1)", "protocol() takes 1 string"),
        ("file()", "requires at least one argument"),
        ("header('X')", "one map argument"),
        ("path_regexp('a', '(')", "path_regexp"),
    ],
)
def test_bad_matcher_function_arguments_fail_at_load(value, words) -> None:
    with pytest.raises(ConfigError) as error:
        build_expression(value, "m.expression", MATCHERS)
    assert error.value.path.startswith("m.expression")
    assert words in str(error.value)
