"""``listen: ["fd/{env.CADDY_HTTP_FD}"]``: serving on a socket inherited from the parent
process (systemd socket activation; Caddy's corpus file ``bind_fd_fdgram_h123``)."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from caddytw.config.errors import ConfigError
from caddytw.config.listen import ListenAddress, parse_listen
from tests.support.server import running_server


def test_served_on_an_inherited_socket(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    route = {"handle": [{"handler": "static_response", "body": "on fd {http.request.host}"}]}
    config = {
        "admin": {"disabled": True},
        "apps": {
            "http": {"servers": {"s": {"listen": ["fd/{env.CADDY_HTTP_FD}"], "routes": [route]}}}
        },
    }
    try:
        with running_server(
            config, tmp_path, [], env={"CADDY_HTTP_FD": str(fd)}, pass_fds=(fd,)
        ) as server:
            # The socket listens already: the answer comes once the server adopted it.
            for _ in range(2):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                connection.request("GET", "/", headers={"Host": "example.test"})
                response = connection.getresponse()
                assert (response.status, response.read()) == (200, b"on fd example.test")
                connection.close()
            assert "Traceback" not in server.log()
    finally:
        listener.close()


def test_fd_addresses_parse_with_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_FD", "7")
    assert parse_listen("fd/{env.TEST_FD}", "l") == [ListenAddress("fd", "7", 0)]
    assert parse_listen("fdgram/3", "l") == [ListenAddress("fdgram", "3", 0)]
    # As Caddy: an unset variable is caught when the listener opens, not at validate.
    (unset,) = parse_listen("fd/{env.NOT_SET_ANYWHERE}", "l")
    with pytest.raises(ValueError, match="not a file descriptor"):
        unset.descriptor()
    with pytest.raises(ConfigError):
        parse_listen("fdx/3", "l")
