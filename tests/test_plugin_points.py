"""Matchers, encoders and load-balancing policies are plugin points, like handlers: a
module dropped into a ``twisted/plugins/`` folder on the path adds one of each, and no
core file names it."""

from __future__ import annotations

import gzip
import random
import textwrap

import pytest

import twisted.plugins
from caddytw.config.reader import ObjectReader
from caddytw.handlers.reverse_proxy.selection import Choice, StaticRequest, parse_policy
from tests.support.memory import memory_server

PLUGIN = """
from dataclasses import replace

from twisted.plugin import IPlugin
from zope.interface import implementer

from caddytw.handlers.encode.encoders import Gzip
from caddytw.handlers.reverse_proxy.selection import Choice
from caddytw.http.interfaces import IEncoderFactory, IMatcherFactory, ISelectionPolicyFactory


@implementer(IPlugin, IMatcherFactory)
class PathLength:
    name = "path_length"

    def build(self, argument, path):
        return lambda request: len(request.decoded_path) == argument


@implementer(IPlugin, IEncoderFactory)
class XGzip:
    name = "x-gzip"

    def parse(self, data, path):
        return replace(Gzip.parse(data, path), name="x-gzip")


class Last:
    def select(self, pool, request):
        return Choice([u for u in pool if u.available()][-1])


@implementer(IPlugin, ISelectionPolicyFactory)
class LastPolicy:
    name = "last"

    def build(self, reader, rng):
        return Last()


path_length = PathLength()
x_gzip = XGzip()
last = LastPolicy()
"""


@pytest.fixture
def dropped_in(tmp_path, monkeypatch):
    folder = tmp_path / "twisted" / "plugins"
    folder.mkdir(parents=True)
    (folder / "caddytw_test_plugin_points.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.setattr(twisted.plugins, "__path__", [*twisted.plugins.__path__, str(folder)])


def test_a_dropped_in_matcher_routes(dropped_in):
    server = memory_server(
        [
            {
                "match": [{"path_length": 4}],
                "handle": [{"handler": "static_response", "body": "four"}],
            }
        ]
    )
    assert server.request("GET", "/abc").body == b"four"
    assert server.request("GET", "/abcd").body == b""


def test_a_dropped_in_encoder_encodes(dropped_in):
    body = "x" * 4096
    server = memory_server(
        [
            {
                "handle": [
                    {"handler": "encode", "encodings": {"x-gzip": {}}},
                    {"handler": "static_response", "body": body},
                ]
            }
        ]
    )
    response = server.request("GET", "/", headers={"Accept-Encoding": "x-gzip"})
    assert response.header("Content-Encoding") == "x-gzip"
    assert gzip.decompress(response.body) == body.encode()


class Upstream:
    def __init__(self, dial: str) -> None:
        self.dial = dial

    def available(self) -> bool:
        return True


def test_a_dropped_in_selection_policy_selects(dropped_in):
    policy = parse_policy(ObjectReader({"policy": "last"}, "p"), random.Random(1))
    pool = [Upstream("a:1"), Upstream("b:1")]
    assert policy.select(pool, StaticRequest()) == Choice(pool[1])


def test_unknown_names_are_still_config_errors():
    with pytest.raises(Exception, match="unknown selection policy 'last'"):
        parse_policy(ObjectReader({"policy": "last"}, "p"), random.Random(1))
