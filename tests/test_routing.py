"""Routing semantics: chaining, terminal, group, subroute, errors routes, empty 200."""

import json
import subprocess
import sys
import textwrap

from tests.support.memory import memory_server
from tests.support.server import REPO, server_env


def respond(body, **extra):
    return {"handler": "static_response", "body": body, **extra}


def test_first_answering_handler_wins_and_middleware_chains():
    server = memory_server(
        [
            {"handle": [{"handler": "vars", "who": "first"}]},
            {"match": [{"path": ["/a"]}], "handle": [respond("{http.vars.who} a")]},
            {"handle": [respond("fallback")]},
        ]
    )
    assert server.request(target="/a").body == b"first a"
    assert server.request(target="/b").body == b"fallback"


def test_terminal_stops_evaluation():
    server = memory_server(
        [
            {
                "match": [{"path": ["/t"]}],
                "handle": [{"handler": "vars", "x": "1"}],
                "terminal": True,
            },
            {"handle": [respond("after")]},
        ]
    )
    response = server.request(target="/t")
    assert (response.status, response.body) == (200, b"")
    assert server.request(target="/u").body == b"after"


def test_group_runs_only_first_match():
    server = memory_server(
        [
            {
                "group": "g",
                "match": [{"path": ["/g*"]}],
                "handle": [{"handler": "vars", "v": "one"}],
            },
            {
                "group": "g",
                "match": [{"path": ["/g*"]}],
                "handle": [{"handler": "vars", "v": "two"}],
            },
            {"handle": [respond("{http.vars.v}")]},
        ]
    )
    assert server.request(target="/gx").body == b"one"


def test_match_sets_or_matchers_and():
    server = memory_server(
        [
            {
                "match": [{"path": ["/a"], "method": ["POST"]}, {"path": ["/b"]}],
                "handle": [respond("hit")],
            }
        ]
    )
    assert server.request("POST", "/a").body == b"hit"
    assert server.request("GET", "/a").body == b""
    assert server.request("GET", "/b").body == b"hit"


def test_subroute_falls_through_to_next():
    server = memory_server(
        [
            {
                "handle": [
                    {
                        "handler": "subroute",
                        "routes": [
                            {"match": [{"path": ["/in"]}], "handle": [respond("inside")]},
                            {"handle": [{"handler": "vars", "sub": "visited"}]},
                        ],
                    },
                    respond("outer {http.vars.sub}"),
                ]
            }
        ]
    )
    assert server.request(target="/in").body == b"inside"
    assert server.request(target="/out").body == b"outer visited"


def test_errors_routes_with_placeholders():
    server = memory_server(
        [
            {
                "handle": [
                    {
                        "handler": "error",
                        "error": "boom {http.request.uri.path}",
                        "status_code": 418,
                    }
                ]
            }
        ],
        errors={
            "routes": [
                {
                    "handle": [
                        respond(
                            "E {http.error.status_code} {http.error.status_text}"
                            " {http.error.message}"
                        )
                    ]
                }
            ]
        },
    )
    response = server.request(target="/x")
    assert response.status == 418  # static_response in error routes defaults to the error status
    assert response.body == b"E 418 I'm a teapot boom /x"


def test_error_without_error_routes_is_empty_status():
    server = memory_server([{"handle": [{"handler": "error", "error": "x", "status_code": 403}]}])
    response = server.request()
    assert (response.status, response.body) == (403, b"")
    assert response.header("content-type") is None


def test_unmatched_error_routes_fall_back_to_status():
    server = memory_server(
        [{"handle": [{"handler": "error", "status_code": 404}]}],
        errors={"routes": [{"match": [{"path": ["/other"]}], "handle": [respond("no")]}]},
    )
    response = server.request(target="/x")
    assert (response.status, response.body) == (404, b"")


def test_subroute_errors_scope():
    server = memory_server(
        [
            {
                "match": [{"path": ["/s/*"]}],
                "handle": [
                    {
                        "handler": "subroute",
                        "routes": [{"handle": [{"handler": "error", "status_code": 401}]}],
                        "errors": {
                            "routes": [{"handle": [respond("sub {http.error.status_code}")]}]
                        },
                    }
                ],
            },
            {"handle": [{"handler": "error", "status_code": 500}]},
        ],
        errors={"routes": [{"handle": [respond("server {http.error.status_code}")]}]},
    )
    assert server.request(target="/s/x").body == b"sub 401"
    assert server.request(target="/x").body == b"server 500"


def test_static_response_fields():
    server = memory_server(
        [
            {
                "handle": [
                    respond(
                        '{"host": "{http.request.host}"}',
                        status_code="201",
                        headers={"X-A": ["1", "{http.request.method}"]},
                    )
                ]
            }
        ]
    )
    response = server.request("PUT", "/", host="h.test")
    assert response.status == 201
    assert response.headers["x-a"] == ["1", "PUT"]
    assert response.header("content-type") == "application/json"
    assert json.loads(response.body) == {"host": "h.test"}


def test_unknown_placeholders_stay_in_bodies():
    server = memory_server([{"handle": [respond("{not.a.thing} {http.request.uri.query}")]}])
    assert server.request(target="/?a=1").body == b"{not.a.thing} a=1"


def test_handler_from_an_extra_plugin_file(tmp_path):
    """A third party adds a handler by dropping a plugin file: no core change."""
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "hello_handler.py").write_text(
        textwrap.dedent(
            """
            from twisted.plugin import IPlugin
            from zope.interface import implementer
            from caddytw.http.interfaces import IHandlerFactory
            from caddytw.http.routing import LeafResource

            class Hello(LeafResource):
                def __init__(self, greeting):
                    self.greeting = greeting
                def render(self, request):
                    return self.greeting.encode()

            @implementer(IPlugin, IHandlerFactory)
            class HelloFactory:
                name = "hello"
                def build(self, config, context, next):
                    greeting = config.text("greeting", "hi")
                    config.done()
                    return Hello(greeting)

            hello = HelloFactory()
            """
        )
    )
    script = textwrap.dedent(
        """
        from tests.support.memory import memory_server
        server = memory_server([{"handle": [{"handler": "hello", "greeting": "plugged in"}]}])
        print(server.request().body.decode())
        """
    )
    env = server_env()
    env["PYTHONPATH"] = f"{REPO}:{tmp_path}"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "plugged in", result.stderr
