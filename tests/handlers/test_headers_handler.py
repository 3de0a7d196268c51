"""The ``headers`` handler end to end over the in-memory HTTP exchange."""

from __future__ import annotations

import pytest

from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve
from tests.support.memory import memory_server

ECHO = echo(
    "in={http.request.header.X-In} host={http.request.host}",
    headers={"X-Up": ["up1", "up2"], "X-Keep": ["k"], "Content-Type": ["text/plain"]},
)


def headers(**fields):
    return {"handler": "headers", **fields}


def test_request_ops_are_seen_by_later_handlers():
    server = serve(
        headers(
            request={
                "set": {"X-In": ["set-{http.request.method}"]},
                "add": {"X-Multi": ["b"]},
                "delete": ["X-Gone"],
            }
        ),
        echo(
            "{http.request.header.X-In}|{http.request.header.X-Multi}|{http.request.header.X-Gone}"
        ),
    )
    response = server.request("POST", "/", headers={"X-In": "x", "X-Multi": "a", "X-Gone": "g"})
    assert response.body == b"set-POST|a,b|"


def test_request_host_can_be_rewritten():
    server = serve(headers(request={"set": {"Host": ["other.example:99"]}}), ECHO)
    assert server.request("GET", "/").body == b"in= host=other.example"


def test_request_regexp_replace_on_every_field():
    server = serve(
        headers(request={"replace": {"*": [{"search_regexp": "(a)(b)", "replace": "[$2$1]"}]}}),
        ECHO,
    )
    assert server.request("GET", "/", headers={"X-In": "abc abc"}).body.startswith(
        b"in=[ba]c [ba]c"
    )


def test_immediate_response_ops_can_be_overridden_by_later_handlers():
    # Applied at once, before static_response sets its own X-Up, as in Caddy.
    server = serve(headers(response={"set": {"X-Up": ["over"], "X-A": ["1", "2"]}}), ECHO)
    response = server.request("GET", "/")
    assert response.headers["x-up"] == ["up1", "up2"]
    assert response.header("x-a") == "1,2"


def test_deferred_response_ops_see_the_final_headers():
    server = serve(
        headers(
            response={"deferred": True, "set": {"X-Up": ["over"]}, "delete": ["X-Keep", "Server"]}
        ),
        ECHO,
    )
    response = server.request("GET", "/")
    assert response.header("x-up") == "over"
    assert response.header("x-keep") is None
    assert response.header("server") is None


def test_deferred_placeholders_are_filled_when_applied():
    server = serve(
        headers(response={"deferred": True, "set": {"X-Status": ["{http.request.uri.path}"]}}),
        {"handler": "rewrite", "uri": "/rewritten"},
        ECHO,
    )
    assert server.request("GET", "/orig").header("x-status") == "/rewritten"


@pytest.mark.parametrize(
    ("require", "applied"),
    [
        ({"status_code": [2]}, True),
        ({"status_code": [200, 404]}, True),
        ({"status_code": [404]}, False),
        ({"headers": {"X-Keep": ["k*"]}}, True),
        ({"headers": {"X-Keep": ["z*"]}}, False),
        ({"headers": {"X-Nope": None}}, True),
        ({"headers": {"X-Keep": None}}, False),
        ({"headers": {"X-Keep": []}}, True),
        ({"status_code": [2], "headers": {"X-Nope": []}}, False),
    ],
)
def test_require_conditions(require, applied):
    server = serve(headers(response={"require": require, "set": {"X-Late": ["yes"]}}), ECHO)
    assert (server.request("GET", "/").header("x-late") == "yes") is applied


def test_wildcard_deletes_on_response():
    server = serve(headers(response={"deferred": True, "delete": ["*-up", "*kee*"]}), ECHO)
    response = server.request("GET", "/")
    assert response.header("x-up") is None
    assert response.header("x-keep") is None
    assert response.header("content-type") == "text/plain"


def test_deferred_delete_all_then_add():
    server = serve(
        headers(response={"deferred": True, "delete": ["*"], "add": {"X-C": ["only"]}}), ECHO
    )
    response = server.request("GET", "/")
    assert response.header("x-c") == "only"
    assert response.header("x-up") is None
    assert response.header("content-type") is None


def test_unknown_placeholders_stay_as_written_and_known_empty_ones_vanish():
    server = serve(
        headers(
            response={
                "set": {"X-A": ["{nope}|{http.request.header.X-Absent}|{http.request.method}"]}
            }
        ),
        ECHO,
    )
    assert server.request("GET", "/").header("x-a") == "{nope}||GET"


def test_deferred_ops_are_dropped_when_a_later_handler_fails():
    # Caddy answers errors through the original writer: wrappers' deferred ops vanish,
    # immediate ones (already on the header map) stay.
    routes = [
        chain(
            headers(response={"set": {"X-Now": ["1"]}}),
            headers(response={"deferred": True, "set": {"X-Later": ["1"]}}),
            {"handler": "error", "error": "nope", "status_code": 409},
        )
    ]
    error_routes = {"routes": [chain(echo("handled {http.error.status_code}"))]}
    response = memory_server(routes, errors=error_routes).request("GET", "/")
    assert response.status == 409
    assert response.body == b"handled 409"
    assert response.header("x-now") == "1"
    assert response.header("x-later") is None


def test_deferred_ops_inside_error_routes_apply():
    routes = [chain({"handler": "error", "status_code": 418})]
    errors = {
        "routes": [
            chain(
                headers(
                    response={"deferred": True, "set": {"X-Err": ["{http.error.status_code}"]}}
                ),
                echo("teapot"),
            )
        ]
    }
    response = memory_server(routes, errors=errors).request("GET", "/")
    assert (response.status, response.header("x-err"), response.body) == (418, "418", b"teapot")


def test_nested_deferred_ops_run_inner_first():
    # The outer (earlier) handler's deferred ops see what the inner one did.
    server = serve(
        headers(
            response={
                "deferred": True,
                "replace": {"X-Order": [{"search": "inner", "replace": "inner+outer"}]},
            }
        ),
        headers(response={"deferred": True, "set": {"X-Order": ["inner"]}}),
        echo("x"),
    )
    assert server.request("GET", "/").header("x-order") == "inner+outer"


def test_config_errors_name_paths():
    def config(handler):
        return {
            "apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}
        }

    base = "apps.http.servers.s.routes[0].handle[0]"
    assert validate(config(headers(bogus=1))) == [f'{base}.bogus: unknown field "bogus"']
    errors = validate(config(headers(response={"require": {"status_code": ["x"]}})))
    assert errors == [f"{base}.response.require.status_code[0]: expected a status code"]
    errors = validate(config(headers(request={"deferred": True})))
    assert errors == [f'{base}.request.deferred: unknown field "deferred"']
