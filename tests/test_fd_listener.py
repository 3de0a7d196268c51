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


def test_http3_on_an_inherited_datagram_socket(tmp_path: Path) -> None:
    """``fdgram/N`` beside ``fd/N`` (Caddy's ``bind fd/... fdgram/...`` with h3): QUIC
    served on the UDP socket the parent bound."""
    from tests.h3.conftest import make_certificate
    from tests.h3.h3client import run

    cert, key = make_certificate(["localhost", "127.0.0.1"], tmp_path)
    stream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    stream.bind(("127.0.0.1", 0))
    stream.listen(16)
    port = stream.getsockname()[1]
    datagram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    datagram.bind(("127.0.0.1", port))
    fds = (stream.fileno(), datagram.fileno())
    route = {"handle": [{"handler": "static_response", "body": "{http.request.proto}"}]}
    server = {
        "listen": ["fd/{env.CADDY_HTTPS_FD}", "fdgram/{env.CADDY_HTTP3_FD}"],
        "routes": [route],
        "tls_connection_policies": [{}],
        "automatic_https": {"disable": True},
    }
    config = {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(tmp_path / "storage")},
        "apps": {
            "http": {"https_port": port, "servers": {"s": server}},
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }
    env = {"CADDY_HTTPS_FD": str(fds[0]), "CADDY_HTTP3_FD": str(fds[1])}
    try:
        with running_server(config, tmp_path, [], env=env, pass_fds=fds) as process:
            result = run({"port": port, "connections": [[{"path": "/"}]]}, timeout=60)
            [[answer]] = result["connections"]
            assert (answer["status"], answer["body"]) == (200, "HTTP/3.0"), process.log()
            assert "Traceback" not in process.log()
    finally:
        stream.close()
        datagram.close()
