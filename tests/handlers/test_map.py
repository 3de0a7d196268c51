"""``map``: lazy placeholders from a lookup table (values checked against Caddy 2.6.2)."""

from __future__ import annotations

import pytest

from caddytw.handlers.map import to_text
from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve

ECHO = echo("a={my_a} b={my_b}")
MAP = {
    "handler": "map",
    "source": "{http.request.uri.path}",
    "destinations": ["{my_a}", "{my_b}"],
    "mappings": [
        {"input": "/x", "outputs": ["ax", "bx-{http.request.method}"]},
        {"input_regexp": "^/re/(\\w+)/(?P<n>\\d+)$", "outputs": ["$1-${n}", None]},
        {"input": "/num", "outputs": [1, True]},
        {"input": "/nulls", "outputs": [None, None]},
    ],
    "defaults": ["da", "db"],
}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/x", "a=ax b=bx-GET"),
        ("/re/foo/12", "a=foo-12 b=db"),  # null output falls through to the default
        ("/nope", "a=da b=db"),
        ("/num", "a=1 b=true"),
        ("/nulls", "a=da b=db"),
    ],
)
def test_mappings(path, body):
    assert serve(MAP, ECHO).request("GET", path).body.decode() == body


def test_without_defaults_unmatched_destinations_are_empty():
    handler = {k: v for k, v in MAP.items() if k != "defaults"}
    assert serve(handler, ECHO).request("GET", "/nope").body == b"a= b="


def test_evaluated_lazily_after_later_rewrites():
    # The source is read when the placeholder is used: after the rewrite.
    server = serve(MAP, {"handler": "rewrite", "uri": "/x"}, ECHO)
    assert server.request("GET", "/nope").body == b"a=ax b=bx-GET"


def test_regexp_outputs_are_not_placeholder_templates():
    handler = {
        "handler": "map",
        "source": "{http.request.uri.path}",
        "destinations": ["{out}"],
        "mappings": [{"input_regexp": "^/(.*)$", "outputs": ["[$1]"]}],
    }
    assert serve(handler, echo("{out}")).request("GET", "/abc").body == b"[abc]"


def test_map_output_usable_in_other_handlers():
    handler = {
        "handler": "map",
        "source": "{http.request.host}",
        "destinations": ["{backend_path}"],
        "mappings": [{"input": "api.example", "outputs": ["/api"]}],
        "defaults": ["/www"],
    }
    server = serve(
        handler,
        {"handler": "rewrite", "uri": "{backend_path}{http.request.uri}"},
        echo("{http.request.uri}"),
    )
    assert server.request("GET", "/p?q=1", host="api.example").body == b"/api/p?q=1"
    assert server.request("GET", "/p", host="other").body == b"/www/p"


def test_self_reference_does_not_recurse_forever():
    handler = {
        "handler": "map",
        "source": "{loop}",
        "destinations": ["{loop}"],
        "mappings": [],
        "defaults": ["d{loop}"],
    }
    assert serve(handler, echo("[{loop}]")).request("GET", "/").body == b"[d]"


def test_to_text_formats_like_go():
    assert [to_text(v) for v in ("s", 1, 1.0, 2.5, True, False)] == [
        "s",
        "1",
        "1",
        "2.5",
        "true",
        "false",
    ]


def base(**changes):
    handler = {
        "handler": "map",
        "source": "{x}",
        "destinations": ["{a}"],
        "mappings": [{"input": "i", "outputs": ["o"]}],
    }
    handler.update(changes)
    return handler


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (base(destinations=["a"]), "destinations[0]: destination must be a placeholder"),
        (base(destinations=["{a}{b}"]), "destinations[0]: destination must be a placeholder"),
        (base(defaults=["1", "2"]), "defaults: 1 destinations != 2 defaults"),
        (
            base(mappings=[{"input": "i", "outputs": ["o", "p"]}]),
            "mappings[0].outputs: mapping 0 has 2 outputs",
        ),
        (
            base(mappings=[{"input": "i", "outputs": ["o"]}, {"input": "i", "outputs": ["p"]}]),
            "mappings[1]: mapping 1 has a duplicate input 'i'",
        ),
        (
            base(mappings=[{"input": "i", "input_regexp": "j", "outputs": ["o"]}]),
            "mappings[0]: mapping has both input and input_regexp",
        ),
        (
            base(mappings=[{"input_regexp": "(", "outputs": ["o"]}]),
            "mappings[0].input_regexp: invalid regexp",
        ),
        (
            base(mappings=[{"input": "i", "outputs": [{"x": 1}]}]),
            "mappings[0].outputs[0]: an output must be a scalar",
        ),
        (
            base(mappings=[{"input": "i", "output": ["o"]}]),
            'mappings[0].output: unknown field "output"',
        ),
    ],
)
def test_config_errors(handler, message):
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    errors = validate(config)
    assert len(errors) == 1
    assert errors[0].startswith(f"apps.http.servers.s.routes[0].handle[0].{message}")
