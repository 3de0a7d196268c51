"""CEL ``expression`` matchers: answers as Debian's Caddy on the same Caddyfile, and
config errors at load naming the JSON path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from caddytw.caddyfile.adapter import adapt
from caddytw.config.errors import ConfigError
from caddytw.http.celmatcher import build_expression, translate
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
    ],
)
def test_bad_expressions_fail_at_load_naming_the_path(value, path, words) -> None:
    with pytest.raises(ConfigError) as error:
        build_expression(value, "m.expression")
    assert error.value.path == path
    assert words in str(error.value)


def test_validate_reports_the_route_path() -> None:
    from caddytw.server.build import validate

    route = {"match": [{"expression": "{http.request.method} =="}], "handle": []}
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [route]}}}}}
    problems = validate(config)
    assert any("routes[0].match[0].expression" in p for p in problems), problems
