"""caddytw.config.netaddr: Go's host/port split, the one every layer uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.config.netaddr import host_and_port, join_host_port, split_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:8080", ("example.com", "8080")),
        ("[::1]:443", ("::1", "443")),
        (":80", ("", "80")),
        ("host:", ("host", "")),
        ("example.com", None),  # missing port
        ("a:b:c", None),  # too many colons
        ("[::1]", None),  # missing port
        ("[::1]:8:0", None),
    ],
)
def test_split_host_port_is_gos(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:8080", ("example.com", "8080")),
        ("[::1]:443", ("::1", "443")),
        ("example.com", ("example.com", "")),
        ("[::1]", ("::1", "")),  # Caddy's MatchHost trims the brackets
        ("a:b:c", ("a:b:c", "")),
        ("", ("", "")),
    ],
)
def test_host_and_port_forgives_what_caddy_forgives(text, expected):
    assert host_and_port(text) == expected


hosts = st.one_of(
    st.from_regex(r"[a-z0-9.-]{0,20}", fullmatch=True),
    st.ip_addresses(v=6).map(str),
)


@given(hosts, st.integers(0, 65535).map(str))
def test_join_then_split_round_trips(host, port):
    assert split_host_port(join_host_port(host, port)) == (host, port)
    assert host_and_port(join_host_port(host, port)) == (host, port)
