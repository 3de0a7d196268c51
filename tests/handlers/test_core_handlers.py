"""static_response, error, subroute and vars, and how errors.routes answer failures.

Expected bodies and statuses were compared with Caddy 2.6.2 on the same config (except
where a comment says otherwise).
"""

from __future__ import annotations

import pytest

from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve
from tests.support.memory import memory_server

ERROR_ECHO = echo(
    "E {http.error.status_code} {http.error.status_text} [{http.error.message}] "
    "{http.request.uri.path}"
)


def error(**fields):
    return {"handler": "error", **fields}


def subroute(routes, errors=None):
    handler = {"handler": "subroute", "routes": routes}
    if errors is not None:
        handler["errors"] = {"routes": errors}
    return handler


# -- static_response --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"a": 1}', "application/json"),
        ("[1, 2]", "application/json"),
        ("{not json", "text/plain; charset=utf-8"),
        ("plain", "text/plain; charset=utf-8"),
    ],
)
def test_static_response_content_type_guess(body, content_type):
    response = serve(echo(body)).request("GET", "/")
    assert response.header("content-type") == content_type
    assert response.body == body.encode()


def test_static_response_explicit_content_type_wins():
    response = serve(echo("{}", headers={"Content-Type": ["text/x-custom"]})).request("GET", "/")
    assert response.header("content-type") == "text/x-custom"


def test_static_response_placeholders_in_status_headers_and_body():
    handler = echo(
        "{http.request.method} {http.request.uri.query} {unknown.key}",
        status_code="{http.request.header.X-Code}",
        headers={"X-Method": ["{http.request.method}", "b"]},
    )
    response = serve(handler).request("PUT", "/?a=1", headers={"X-Code": "202"})
    assert response.status == 202
    assert response.headers["x-method"] == ["PUT", "b"]
    # Unknown placeholders stay in bodies (Caddy's ReplaceKnown).
    assert response.body == b"PUT a=1 {unknown.key}"


def test_static_response_bad_dynamic_status_is_500():
    response = serve(echo("x", status_code="{http.request.header.X-Code}")).request(
        "GET", "/", headers={"X-Code": "abc"}
    )
    assert response.status == 500


def test_static_response_empty_body_has_no_content_type():
    response = serve(echo("", status_code=201)).request("GET", "/")
    assert (response.status, response.header("content-type"), response.body) == (201, None, b"")


def test_static_response_without_body():
    response = serve({"handler": "static_response", "status_code": 204}).request("GET", "/")
    assert response.status == 204
    assert response.body == b""


def test_static_response_close():
    response = serve(echo("bye", close=True)).request("GET", "/")
    assert response.header("connection") == "close"


def test_static_response_abort_drops_the_connection():
    assert (
        serve({"handler": "static_response", "abort": True}).raw(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        == b""
    )


def test_static_response_head_has_length_but_no_body():
    response = serve(echo("twelve bytes")).request("HEAD", "/")
    assert response.header("content-length") == "12"
    assert response.body == b""


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (echo("x", status_code=99), "status_code: invalid status code '99'"),
        (echo("x", status_code="abc"), "status_code: invalid status code 'abc'"),
        (echo("x", status_code=True), "status_code: expected a status code"),
        (echo("x", headers={"X": "y"}), "headers.X: expected an array"),
        (echo(5), "body: expected a string"),
        (echo("x", bogus=1), 'bogus: unknown field "bogus"'),
    ],
)
def test_static_response_config_errors(handler, message):
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    errors = validate(config)
    assert len(errors) == 1
    assert errors[0].startswith(f"apps.http.servers.s.routes[0].handle[0].{message}")


# -- error and errors.routes ------------------------------------------------------------

ROUTES = [
    chain(error(error="boom", status_code=418), match=[{"path": ["/e1"]}]),
    chain(error(status_code="{http.request.header.X-Code}"), match=[{"path": ["/e2"]}]),
    chain(error(error="plain"), match=[{"path": ["/e3"]}]),
    chain(
        subroute(
            [
                chain(error(error="inner", status_code=409), match=[{"path": ["/sub/err"]}]),
                chain(echo("sub ok"), match=[{"path": ["/sub/ok"]}]),
            ],
            errors=[chain(echo("SUBERR {http.error.status_code} {http.error.message}"))],
        ),
        match=[{"path": ["/sub/*"]}],
    ),
    chain(
        subroute(
            [
                chain({"handler": "vars", "v1": "x"}),
                chain(error(error="inner2", status_code=502), match=[{"path": ["/sub2/err"]}]),
            ]
        ),
        echo("after sub2 {http.vars.v1}"),
        match=[{"path": ["/sub2/*"]}],
    ),
    chain(echo("fallthrough")),
]
ERRORS = {
    "routes": [
        chain(error(error="again", status_code=503), match=[{"path": ["/e3"]}]),
        chain(ERROR_ECHO),
    ]
}


@pytest.fixture(scope="module")
def with_errors():
    return memory_server(ROUTES, errors=ERRORS)


@pytest.fixture(scope="module")
def without_errors():
    return memory_server(ROUTES)


@pytest.mark.parametrize(
    ("path", "headers", "status", "body"),
    [
        ("/e1", {}, 418, "E 418 I'm a teapot [boom] /e1"),
        ("/e2", {"X-Code": "451"}, 451, "E 451 Unavailable For Legal Reasons [] /e2"),
        ("/e2", {"X-Code": "abc"}, 500, "E 500 Internal Server Error [] /e2"),
        ("/e3", {}, 500, ""),  # the error route itself failed: bare status
        ("/sub/err", {}, 409, "SUBERR 409 inner"),  # the subroute's own error routes
        ("/sub/ok", {}, 200, "sub ok"),
        ("/sub/none", {}, 200, "fallthrough"),  # a subroute that answers nothing: go on
        ("/sub2/err", {}, 502, "E 502 Bad Gateway [inner2] /sub2/err"),  # falls to the server's
        ("/sub2/x", {}, 200, "after sub2 x"),  # vars set inside a subroute persist after it
        ("/other", {}, 200, "fallthrough"),
    ],
)
def test_error_routes(with_errors, path, headers, status, body):
    response = with_errors.request("GET", path, headers=headers)
    assert (response.status, response.body.decode()) == (status, body)


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/e1", 418, ""),
        ("/e3", 500, ""),
        ("/sub/err", 409, "SUBERR 409 inner"),
        ("/sub2/err", 502, ""),
    ],
)
def test_errors_without_error_routes_are_bare_statuses(without_errors, path, status, body):
    response = without_errors.request("GET", path)
    assert (response.status, response.body.decode()) == (status, body)
    if not body:
        assert response.header("content-length") == "0"


def test_static_response_in_error_routes_defaults_to_the_error_status():
    routes = [chain(error(status_code=404))]
    errors = {"routes": [chain(echo("not here")), chain(echo("never"))]}
    response = memory_server(routes, errors=errors).request("GET", "/")
    assert (response.status, response.body) == (404, b"not here")
    explicit = {"routes": [chain(echo("ok anyway", status_code=200))]}
    assert memory_server(routes, errors=explicit).request("GET", "/").status == 200


def test_error_routes_can_match_on_the_error():
    routes = [
        chain(error(status_code=404), match=[{"path": ["/missing"]}]),
        chain(error(status_code=500)),
    ]
    errors = {
        "routes": [
            chain(echo("custom 404"), match=[{"vars": {"{http.error.status_code}": ["404"]}}]),
            chain(echo("generic {http.error.status_code}")),
        ]
    }
    server = memory_server(routes, errors=errors)
    assert server.request("GET", "/missing").body == b"custom 404"
    assert server.request("GET", "/x").body == b"generic 500"


def test_a_handler_crash_is_a_500_without_traceback():
    # A bad dynamic status in the error handler itself: nothing but a bare status leaks.
    routes = [chain(error(error="x", status_code="{http.request.header.X}"))]
    response = memory_server(routes).request("GET", "/", headers={"X": "9999"})
    assert response.status == 500
    assert b"Traceback" not in response.body


def test_error_config_errors():
    config = {
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "listen": [":1"],
                        "routes": [chain(error(status_code=1000)), chain(error(msg="x"))],
                    }
                }
            }
        }
    }
    assert validate(config) == [
        "apps.http.servers.s.routes[0].handle[0].status_code: invalid status code '1000'",
        'apps.http.servers.s.routes[1].handle[0].msg: unknown field "msg"',
    ]


# -- subroute ---------------------------------------------------------------------------


def test_subroute_terminal_ends_the_whole_request():
    """As Caddy (tests/compat/test_core_vs_caddy.py checks it against Debian's caddy):
    a terminal route inside a subroute runs nothing after it, not even the routes after
    the subroute, so the answer is the empty 200."""
    handler = subroute(
        [
            chain({"handler": "vars", "a": "1"}, terminal=True),
            chain({"handler": "vars", "a": "never"}),
        ]
    )
    response = serve(handler, echo("a={http.vars.a}")).request("GET", "/")
    assert (response.status, response.body) == (200, b"")


def test_subroute_groups_are_local():
    handler = subroute(
        [
            chain({"handler": "vars", "first": "1"}, group="g"),
            chain({"handler": "vars", "second": "1"}, group="g"),
        ]
    )
    routes = [
        chain(handler),
        chain({"handler": "vars", "outer": "1"}, group="g"),
        chain(echo("{http.vars.first}{http.vars.second}{http.vars.outer}")),
    ]
    assert memory_server(routes).request("GET", "/").body == b"11"


def test_nested_subroutes_with_their_own_error_routes():
    inner = subroute(
        [chain(error(error="deep", status_code=400))],
        errors=[chain(echo("inner handled {http.error.message}"))],
    )
    outer = subroute([chain(inner)], errors=[chain(echo("outer handled"))])
    assert serve(outer).request("GET", "/").body == b"inner handled deep"


def test_error_after_leaving_a_subroute_uses_the_outer_scope():
    handler = subroute([chain({"handler": "vars", "x": "1"})], errors=[chain(echo("sub errors"))])
    routes = [chain(handler, error(status_code=410))]
    errors = {"routes": [chain(echo("server errors {http.error.status_code}"))]}
    assert memory_server(routes, errors=errors).request("GET", "/").body == b"server errors 410"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            subroute([chain({"handler": "nope"})]),
            "routes[0].handle[0].handler: unknown handler module 'nope' (no plugin provides it)",
        ),
        (
            subroute([], errors=[chain(echo("x", bogus=1))]),
            'errors.routes[0].handle[0].bogus: unknown field "bogus"',
        ),
        (
            subroute([], errors=[]) | {"errors": {"route": []}},
            'errors.route: unknown field "route"',
        ),
    ],
)
def test_subroute_config_errors_name_nested_paths(handler, message):
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    assert validate(config) == [f"apps.http.servers.s.routes[0].handle[0].{message}"]


# -- vars -------------------------------------------------------------------------------


def test_vars_values_placeholders_and_types():
    handler = {"handler": "vars", "who": "{http.request.method}", "n": 5, "flag": True}
    response = serve(
        handler, echo("{http.vars.who} {http.vars.n} {http.vars.flag} [{http.vars.unset}]")
    ).request("DELETE", "/")
    assert response.body == b"DELETE 5 True []"


def test_vars_later_handlers_overwrite_and_matchers_see_them():
    routes = [
        chain({"handler": "vars", "stage": "one"}),
        chain({"handler": "vars", "stage": "two"}),
        chain(echo("stage two seen"), match=[{"vars": {"stage": ["two"]}}]),
        chain(echo("not seen")),
    ]
    assert memory_server(routes).request("GET", "/").body == b"stage two seen"
