"""The h2/h3 request line checks (``caddytw.http.pseudo``) in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.http.pseudo import BadRequest, request_line
from caddytw.http.request import _HOST_BYTES, valid_host

GET = {b":method": b"GET", b":scheme": b"https", b":authority": b"example.com"}


def test_hash_is_escaped_and_authority_is_host() -> None:
    line = request_line({**GET, b":path": b"/a#b?c#"}, [])
    assert line == (b"GET", b"/a%23b?c%23", b"example.com")


@pytest.mark.parametrize(
    ("pseudo", "hosts", "status"),
    [
        ({**GET, b":path": b"/a b"}, [], 400),
        ({**GET, b":path": b"http://evil/"}, [], 400),
        ({**GET, b":path": b"*"}, [], 400),
        ({**GET, b":path": b"/", b":authority": b"evil.com/@good"}, [], 400),
        ({**GET, b":path": b"/"}, [b"other.example"], 400),
        ({b":method": b"CONNECT", b":authority": b"example.com:443"}, [], 405),
        ({b":method": b"CONNECT"}, [], 400),
    ],
)
def test_refusals(pseudo: dict[bytes, bytes], hosts: list[bytes], status: int) -> None:
    with pytest.raises(BadRequest) as caught:
        request_line(pseudo, hosts)
    assert caught.value.status == status


def test_host_header_used_without_authority_but_not_in_http3() -> None:
    pseudo = {b":method": b"GET", b":scheme": b"https", b":path": b"/"}
    assert request_line(pseudo, [b"h.example"]).host == b"h.example"
    assert request_line({**pseudo, b":authority": b"h.example"}, [b"h.example"], http3=True)
    with pytest.raises(BadRequest):
        request_line(pseudo, [], http3=True)


@given(st.binary(max_size=40))
def test_any_path_is_refused_or_a_clean_origin_form(path: bytes) -> None:
    try:
        line = request_line({**GET, b":path": path}, [])
    except BadRequest as bad:
        assert bad.status == 400
        return
    assert line.target.startswith(b"/")
    assert b"#" not in line.target and b" " not in line.target


@given(st.binary(max_size=40))
def test_valid_host_is_every_byte_allowed(value: bytes) -> None:
    """Go's ``ValidHostHeader``: a Host is valid when each of its bytes is allowed."""
    assert valid_host(value) == all(byte in _HOST_BYTES for byte in value)


@given(st.binary(max_size=20))
def test_valid_host_refuses_separators(value: bytes) -> None:
    if valid_host(value):
        assert not set(value) & set(b' /@<>"\\{}|^`#?')
