"""``request_body``: 413 over ``max_size``; smaller bodies reach later handlers intact."""

from __future__ import annotations

import pytest

from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve
from tests.support.memory import memory_server

LIMIT = {"handler": "request_body", "max_size": 10}


@pytest.mark.parametrize(
    ("size", "status"), [(0, 200), (9, 200), (10, 200), (11, 413), (5000, 413)]
)
def test_limit(size, status):
    response = serve(LIMIT, echo("ok")).request("POST", "/", body=b"x" * size)
    assert response.status == status
    assert response.body == (b"ok" if status == 200 else b"")


def test_chunked_body_over_the_limit():
    server = serve(LIMIT, echo("ok"))
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
    )
    assert server.raw(raw).startswith(b"HTTP/1.1 413 ")


def test_zero_means_no_limit():
    server = serve({"handler": "request_body", "max_size": 0}, echo("ok"))
    assert server.request("POST", "/", body=b"x" * 100_000).status == 200


def test_error_routes_see_413():
    routes = [chain(LIMIT, echo("ok"))]
    errors = {"routes": [chain(echo("{http.error.status_code} {http.error.message}"))]}
    response = memory_server(routes, errors=errors).request("POST", "/", body=b"x" * 11)
    assert (response.status, response.body) == (413, b"413 http: request body too large")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ({"handler": "request_body", "max_size": -1}, "max_size: must be at least 0"),
        ({"handler": "request_body", "max_size": "1MB"}, "max_size: expected an integer"),
        ({"handler": "request_body", "set": "x"}, 'set: unknown field "set"'),
    ],
)
def test_config_errors(handler, message):
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    errors = validate(config)
    assert len(errors) == 1
    assert errors[0].startswith(f"apps.http.servers.s.routes[0].handle[0].{message}")
