"""The FastCGI wire format, the CGI head and environment rules, in memory."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.web.iweb import UNKNOWN_LENGTH

from caddytw.config.reader import ObjectReader
from caddytw.handlers.reverse_proxy.cgienv import finish_env, split_pos
from caddytw.handlers.reverse_proxy.config import parse_proxy_config
from caddytw.handlers.reverse_proxy.fastcgi import (
    STDIN,
    STDOUT,
    FastCGIError,
    RecordReader,
    encode_params,
    parse_head,
    record,
    stream,
)


def decode_params(data: bytes) -> dict[bytes, bytes]:
    """The inverse of :func:`encode_params`, as a FastCGI server reads the params."""
    result = {}
    index = 0

    def size() -> int:
        nonlocal index
        if data[index] < 128:
            index += 1
            return data[index - 1]
        value: int = struct.unpack(">I", data[index : index + 4])[0] & 0x7FFFFFFF
        index += 4
        return value

    while index < len(data):
        name_size = size()
        value_size = size()
        name = data[index : index + name_size]
        value = data[index + name_size : index + name_size + value_size]
        if len(name) != name_size or len(value) != value_size:
            raise FastCGIError("truncated name-value pair")
        index += name_size + value_size
        result[name] = value
    return result


texts = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=300)


@given(st.dictionaries(texts.filter(bool), texts, max_size=8))
def test_params_round_trip(env: dict[str, str]) -> None:
    def wire(value: str) -> bytes:
        try:
            return value.encode("latin-1")  # the request's own bytes, unchanged
        except UnicodeEncodeError:
            return value.encode("utf-8")

    decoded = decode_params(encode_params(env))
    assert decoded == {k.encode("utf-8"): wire(v) for k, v in env.items()}


def test_long_params_use_four_byte_lengths() -> None:
    env = {"K" * 200: "v" * 70000}
    data = encode_params(env)
    assert data[:4] == bytes([0x80, 0, 0, 200])
    assert decode_params(data) == {b"K" * 200: b"v" * 70000}


@given(st.binary(max_size=200_000), st.lists(st.integers(1, 70_000), max_size=20))
def test_records_split_and_reassemble_in_any_pieces(data: bytes, cuts: list[int]) -> None:
    wire = stream(STDOUT, data) + record(STDOUT)
    assert len(wire) % 8 == 0
    reader = RecordReader()
    got = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got.extend(reader.feed(wire[start : start + cut]))
        start += cut
    got.extend(reader.feed(wire[start:]))
    assert b"".join(content for _, _, content in got) == data
    assert got[-1] == (STDOUT, 1, b"")
    assert all(len(content) <= 65535 for _, _, content in got)


def test_bad_version_is_an_error() -> None:
    with pytest.raises(FastCGIError):
        list(RecordReader().feed(b"\x02" + record(STDIN)[1:]))


def test_cgi_head() -> None:
    code, headers, length = parse_head(
        b"Status: 404 Not Found\r\nX-A: 1\r\nX-A: 2\nContent-Length: 12\r\n"
    )
    assert (code, length) == (404, 12)
    assert headers.getRawHeaders(b"x-a") == [b"1", b"2"]
    assert headers.getRawHeaders(b"status") == [b"404 Not Found"]  # kept, as Caddy does
    code, headers, length = parse_head(b"Location: /x")
    assert (code, length) == (200, UNKNOWN_LENGTH)
    for bad in (b"Status: soon", b"no colon here", b"Status: 42"):
        with pytest.raises(FastCGIError):
            parse_head(bad)


@pytest.mark.parametrize(
    ("path", "split", "expected"),
    [
        ("/a.php/b", [".php"], 6),
        ("/A.PHP/b", [".php"], 6),
        ("/a.html", [".php"], -1),
        ("/a.php", [], 0),
        ("/x.phar/y.php", [".php", ".phar"], 13),
    ],
)
def test_split_pos(path: str, split: list[str], expected: int) -> None:
    assert split_pos(path, split) == expected


def test_content_variables_per_method() -> None:
    env: dict[str, str] = {}
    finish_env(env, b"GET", "", 0)
    assert env == {"CONTENT_LENGTH": "0"}
    finish_env(env, b"POST", "", 3)
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    finish_env(env, b"HEAD", "", 3)
    assert env["CONTENT_LENGTH"] == "0"


def test_fastcgi_config_and_unix_dials() -> None:
    parsed = parse_proxy_config(
        ObjectReader(
            {
                "upstreams": [{"dial": "unix//run/php.sock"}],
                "transport": {
                    "protocol": "fastcgi",
                    "root": "/srv",
                    "split_path": [".php"],
                    "env": {"A": "{http.request.host}"},
                    "resolve_root_symlink": True,
                    "capture_stderr": True,
                    "dial_timeout": "1s",
                    "read_timeout": "2s",
                    "write_timeout": "3s",
                },
            },
            "h",
        )
    )
    fastcgi = parsed.transport.fastcgi
    assert fastcgi is not None
    assert (fastcgi.root, fastcgi.split_path, fastcgi.env) == (
        "/srv",
        (".php",),
        (("A", "{http.request.host}"),),
    )
    assert (parsed.transport.dial_timeout, parsed.transport.read_timeout) == (1.0, 2.0)
    upstream = parsed.upstreams[0]
    assert (upstream.host, upstream.port, upstream.network) == ("/run/php.sock", 0, "unix")
