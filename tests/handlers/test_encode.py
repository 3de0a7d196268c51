"""The ``encode`` handler end to end (in memory). The plain cases were compared with
Caddy 2.6.2; ETag suffixes, 304 Vary and ``no-transform`` follow current Caddy."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
import zstandard
from twisted.web.server import NOT_DONE_YET

from caddytw.config.reader import ObjectReader
from caddytw.handlers.encode import handler as encode
from caddytw.http.routing import LeafResource
from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve, serve_resource
from tests.support.memory import Response, memory_server

BIG = "hello world " * 100
ENCODE = {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}}, "prefer": ["gzip", "zstd"]}


def decoded(response: Response) -> bytes:
    coding = response.header("content-encoding")
    if coding == "gzip":
        return gzip.decompress(response.body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(response.body)
    return response.body


def get(
    *handlers: dict[str, Any], accept: str | None = "gzip", method: str = "GET", **headers: str
):
    if accept is not None:
        headers["Accept-Encoding"] = accept
    return serve(*handlers).request(method, "/", headers=headers)


def test_gzip_text_body():
    response = get(ENCODE, echo(BIG))
    assert response.header("content-encoding") == "gzip"
    assert response.header("vary") == "Accept-Encoding"
    assert decoded(response) == BIG.encode()
    # Written in one piece: compressed in one piece, with an exact Content-Length.
    assert response.header("content-length") == str(len(response.body))
    assert response.header("transfer-encoding") is None


@pytest.mark.parametrize(("size", "encoded"), [(512, False), (513, True)])
def test_minimum_length_is_exclusive(size, encoded):
    response = get(ENCODE, echo("x" * size))
    assert (response.header("content-encoding") == "gzip") is encoded
    assert decoded(response) == b"x" * size


def test_custom_minimum_length():
    handler = {**ENCODE, "minimum_length": 10}
    assert get(handler, echo("x" * 11)).header("content-encoding") == "gzip"
    assert get(handler, echo("x" * 10)).header("content-encoding") is None


@pytest.mark.parametrize(
    ("headers", "encoded"),
    [
        ({"Content-Type": ["image/png"]}, False),
        ({"Content-Type": ["application/json; charset=utf-8"]}, True),
        ({"Content-Type": ["image/svg+xml"]}, True),
        ({"Content-Type": ["text/css"]}, True),
        ({"Content-Encoding": ["br"]}, False),
        ({"Cache-Control": ["no-transform"]}, False),
    ],
)
def test_default_matcher_and_never_double_encode(headers, encoded):
    response = get(ENCODE, echo(BIG, headers=headers))
    assert (response.header("content-encoding") == "gzip") is encoded
    if not encoded:
        assert response.body == BIG.encode()
        assert response.header("vary") is None


def test_custom_match():
    handler = {**ENCODE, "match": {"headers": {"Content-Type": ["image/*"]}, "status_code": [2]}}
    assert (
        get(handler, echo(BIG, headers={"Content-Type": ["image/bmp"]})).header("content-encoding")
        == "gzip"
    )
    assert get(handler, echo(BIG)).header("content-encoding") is None
    not_ok = get(handler, echo(BIG, status_code=404, headers={"Content-Type": ["image/bmp"]}))
    assert not_ok.header("content-encoding") is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("zstd", "zstd"),
        ("gzip;q=0.5, zstd", "zstd"),
        ("gzip, zstd", "gzip"),  # equal q: the server's prefer order
        ("zstd, gzip", "gzip"),
        ("zstd;q=0", None),
        ("br", None),
        ("identity", None),
        ("*", None),
        ("GZIP", "gzip"),
        (None, None),
    ],
)
def test_negotiation(accept, expected):
    response = get(ENCODE, echo(BIG), accept=accept)
    assert response.header("content-encoding") == expected
    assert decoded(response) == BIG.encode()


def test_default_prefer_is_zstd_first():
    handler = {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}}}
    assert get(handler, echo(BIG), accept="gzip, zstd").header("content-encoding") == "zstd"


def test_other_statuses_are_encoded_too():
    response = get(ENCODE, echo(BIG, status_code=404))
    assert (response.status, response.header("content-encoding")) == (404, "gzip")


def test_head_gets_the_headers_without_a_body():
    get_response = get(ENCODE, echo(BIG))
    head = get(ENCODE, echo(BIG), method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-encoding") == "gzip"
    assert head.header("content-length") == get_response.header("content-length")


def test_no_content_and_not_modified():
    assert get(ENCODE, echo("", status_code=204)).header("content-encoding") is None
    not_modified = get(ENCODE, echo("", status_code=304))
    assert not_modified.header("content-encoding") is None
    assert not_modified.header("vary") == "Accept-Encoding"


def test_vary_is_added_once_and_accept_ranges_dropped():
    response = get(ENCODE, echo(BIG, headers={"Vary": ["Origin"], "Accept-Ranges": ["bytes"]}))
    assert response.headers["vary"] == ["Origin", "Accept-Encoding"]
    assert response.header("accept-ranges") is None
    again = get(ENCODE, echo(BIG, headers={"Vary": ["origin, accept-encoding"]}))
    assert again.headers["vary"] == ["origin, accept-encoding"]


def test_strong_etag_gets_the_encoding_and_if_none_match_is_restored():
    handler = echo(BIG + "{http.request.header.If-None-Match}", headers={"Etag": ['"abc"']})
    response = get(ENCODE, handler, **{"If-None-Match": '"abc-gzip"'})
    assert response.header("etag") == '"abc-gzip"'
    assert decoded(response).endswith(b'"abc"')
    weak = get(ENCODE, echo(BIG, headers={"Etag": ['W/"abc"']}))
    assert weak.header("etag") == 'W/"abc"'


def test_request_no_transform_disables_encoding():
    response = get(ENCODE, echo(BIG), **{"Cache-Control": "no-transform"})
    assert response.header("content-encoding") is None


def test_error_answers_are_not_encoded_by_the_failed_chain():
    routes = [chain(ENCODE, {"handler": "error", "status_code": 500})]
    errors = {"routes": [chain(echo(BIG))]}
    response = memory_server(routes, errors=errors).request(
        "GET", "/", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status == 500
    assert response.header("content-encoding") is None
    assert response.body == BIG.encode()


def test_encode_inside_error_routes_works():
    routes = [chain({"handler": "error", "status_code": 503})]
    errors = {"routes": [chain(ENCODE, echo(BIG))]}
    response = memory_server(routes, errors=errors).request(
        "GET", "/", headers={"Accept-Encoding": "gzip"}
    )
    assert (response.status, response.header("content-encoding")) == (503, "gzip")
    assert decoded(response) == BIG.encode()


def test_outer_deferred_headers_see_the_encoding():
    headers = {
        "handler": "headers",
        "response": {
            "deferred": True,
            "set": {"X-Enc": ["seen"]},
            "require": {"headers": {"Content-Encoding": ["gzip"]}},
        },
    }
    response = get(headers, ENCODE, echo(BIG))
    assert response.header("x-enc") == "seen"


class ChunkWriter(LeafResource):
    """Streams ``chunks`` in separate writes, optionally declaring the length first."""

    def __init__(
        self, chunks: list[bytes], content_type: bytes | None, declare_length: bool
    ) -> None:
        self.chunks = chunks
        self.content_type = content_type
        self.declare_length = declare_length

    def render(self, request: Any) -> Any:
        if self.content_type is not None:
            request.setHeader(b"content-type", self.content_type)
        if self.declare_length:
            request.setHeader(b"content-length", b"%d" % sum(map(len, self.chunks)))
        for chunk in self.chunks:
            request.write(chunk)
        request.finish()
        return NOT_DONE_YET


def streamed(
    chunks, content_type=b"text/plain", declare_length=False, config=ENCODE, accept="gzip"
):
    writer = ChunkWriter(chunks, content_type, declare_length)
    fields = {key: value for key, value in config.items() if key != "handler"}
    handler = encode.build(ObjectReader(fields, "enc"), None, writer)
    return serve_resource(handler).request("GET", "/", headers={"Accept-Encoding": accept})


@pytest.mark.parametrize("declare_length", [False, True])
@pytest.mark.parametrize("accept", ["gzip", "zstd"])
def test_streamed_body_is_encoded_chunk_by_chunk(declare_length, accept):
    chunks = [(b"%05d " % i) * 2000 for i in range(40)]
    response = streamed(chunks, declare_length=declare_length, accept=accept)
    assert response.header("content-encoding") == accept
    assert response.header("content-length") is None
    assert response.header("transfer-encoding") == "chunked"
    assert decoded(response) == b"".join(chunks)


def test_small_first_write_of_an_unsized_stream_is_not_encoded():
    # Caddy decides on the first write when no Content-Length is known.
    response = streamed([b"x" * 100, b"y" * 5000])
    assert response.header("content-encoding") is None
    assert response.body == b"x" * 100 + b"y" * 5000


def test_small_first_write_of_a_sized_stream_is_encoded():
    response = streamed([b"x" * 100, b"y" * 5000], declare_length=True)
    assert response.header("content-encoding") == "gzip"
    assert decoded(response) == b"x" * 100 + b"y" * 5000


@pytest.mark.parametrize(
    ("first", "content_type", "encoded"),
    [
        (b"<!DOCTYPE html>" + b"x" * 600, "text/html; charset=utf-8", True),
        (b"plain " * 100, "text/plain; charset=utf-8", True),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 600, "image/png", False),
        (b"\x00\x01" * 300, "application/octet-stream", False),
    ],
    ids=["html", "text", "png", "binary"],
)
def test_untyped_body_is_sniffed(first, content_type, encoded):
    response = streamed([first], content_type=None)
    assert response.header("content-type") == content_type
    assert (response.header("content-encoding") == "gzip") is encoded
    assert decoded(response) == first


def test_short_untyped_body_is_left_alone():
    response = streamed([b"short"], content_type=None)
    assert response.header("content-type") is None


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ({"encodings": {"br": {}}}, "encodings.br: unknown module: http.encoders.br"),
        ({"encodings": {"gzip": {"level": 12}}}, "encodings.gzip.level: quality too high"),
        ({"encodings": {"gzip": {}}, "prefer": ["zstd"]}, "prefer[0]: encoding zstd not enabled"),
        (
            {"encodings": {"gzip": {}}, "prefer": ["gzip", "gzip"]},
            "prefer[1]: encoding gzip is duplicated",
        ),
        ({"encodings": {"gzip": {}}, "minimum_length": -1}, "minimum_length: must be at least 0"),
        (
            {"encodings": {"gzip": {}}, "match": {"status": [200]}},
            'match.status: unknown field "status"',
        ),
    ],
)
def test_config_errors(handler, message):
    route = chain({"handler": "encode", **handler})
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [route]}}}}}
    errors = validate(config)
    assert len(errors) == 1
    assert errors[0].startswith(f"apps.http.servers.s.routes[0].handle[0].{message}")
