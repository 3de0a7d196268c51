"""Admin address parsing and the Host/Origin policy."""

import pytest

from caddytw.admin.origins import check, parse_admin_listen
from caddytw.config.model import AdminConfig


@pytest.mark.parametrize(
    ("text", "network", "host", "port"),
    [
        ("localhost:2019", "tcp", "localhost", 2019),
        ("tcp/127.0.0.1:0", "tcp", "127.0.0.1", 0),
        (":2019", "tcp", "", 2019),
        ("[::1]:2019", "tcp", "::1", 2019),
        ("unix//run/caddy.sock", "unix", "", 0),
    ],
)
def test_parse(text, network, host, port):
    address = parse_admin_listen(text)
    assert (address.network, address.host, address.port) == (network, host, port)


@pytest.mark.parametrize("text", ["localhost", "localhost:x", "localhost:70000", "unix/"])
def test_parse_errors(text):
    with pytest.raises(ValueError):
        parse_admin_listen(text)


def test_loopback_policy():
    address = parse_admin_listen("localhost:2019")
    admin = AdminConfig()
    assert check(admin, address, "localhost:2019", None) is None
    assert check(admin, address, "[::1]:2019", None) is None
    assert check(admin, address, "localhost", None) == "host not allowed: localhost"
    assert check(admin, address, "localhost:2019", "http://127.0.0.1:2019") is None
    assert check(admin, address, "localhost:2019", "https://evil.example") is not None


def test_wildcard_and_configured_origins():
    wildcard = parse_admin_listen(":2019")
    assert check(AdminConfig(), wildcard, "anything:1", "http://anywhere") is None
    admin = AdminConfig(origins=("admin.example:2019",), enforce_origin=True)
    assert check(admin, wildcard, "x", "http://admin.example:2019") is None
    assert check(admin, wildcard, "x", None) == "missing required Origin header"
    assert check(admin, wildcard, "x", "http://other:2019") is not None
