"""The real ``twistd -n caddy`` over real sockets: defaults, keep-alive, limits, logs."""

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest

from tests.support.ports import free_port
from tests.support.server import REPO, TWISTD, running_server, server_env, simple_config


def hello_routes():
    return [
        {
            "match": [{"path": ["/slow-header"]}],
            "handle": [{"handler": "static_response", "body": "x"}],
        },
        {"handle": [{"handler": "static_response", "body": "hello {http.request.uri.path}"}]},
    ]


def recv_all(sock, timeout=5.0):
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def test_validate_cli_accepts_the_default_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "caddytw", "validate", str(REPO / "conf" / "caddy.json")],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_validate_cli_lists_errors_with_paths(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(simple_config(1, [{"handle": [{"handler": "nope"}]}], bogus=True)))
    result = subprocess.run(
        [sys.executable, "-m", "caddytw", "validate", str(bad)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert 'apps.http.servers.srv0.bogus: unknown field "bogus"' in result.stderr
    assert "apps.http.servers.srv0.routes[0].handle[0].handler" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    result = subprocess.run(
        [sys.executable, "-m", "caddytw", "validate", str(broken)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1 and "invalid JSON at line 1" in result.stderr


def test_bad_config_fails_to_start_with_path(tmp_path):
    config = tmp_path / "caddy.json"
    config.write_text(json.dumps(simple_config(free_port(), [], read_timeout="soon")))
    result = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "caddy", "-c", str(config)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "apps.http.servers.srv0.read_timeout" in result.stdout + result.stderr


def test_keepalive_and_pipelining(tmp_path):
    port = free_port()
    with running_server(simple_config(port, hello_routes()), tmp_path, [port]):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for index in range(5):
            connection.request("GET", f"/k{index}")
            response = connection.getresponse()
            assert response.read() == f"hello /k{index}".encode()
        connection.close()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            pipeline = (
                b"".join(f"GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(3))
                + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(pipeline)
            data = recv_all(sock)
        bodies = [b"hello /p0", b"hello /p1", b"hello /p2", b"hello /last"]
        positions = [data.find(body) for body in bodies]
        assert all(p >= 0 for p in positions) and positions == sorted(positions)


def test_max_header_bytes_gives_431(tmp_path):
    port = free_port()
    config = simple_config(port, hello_routes(), max_header_bytes=2048)
    with running_server(config, tmp_path, [port]):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
            data = recv_all(sock)
        assert data.startswith(b"HTTP/1.1 431 ")


def test_read_header_timeout_drops_slow_clients_but_keeps_serving(tmp_path):
    port = free_port()
    config = simple_config(port, hello_routes(), read_header_timeout="500ms")
    with (
        running_server(config, tmp_path, [port]),
        socket.create_connection(("127.0.0.1", port)) as slow,
    ):
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert recv_all(slow, timeout=10) == b""  # closed by the server
        assert time.monotonic() - started < 9
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/ok")
        assert connection.getresponse().read() == b"hello /ok"


def test_idle_timeout_closes_idle_connections(tmp_path):
    port = free_port()
    config = simple_config(port, hello_routes(), idle_timeout="1s")
    with running_server(config, tmp_path, [port]):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            data = recv_all(sock, timeout=10)
        assert b"hello /a" in data  # answered, then closed after idling


def test_access_log_in_caddy_shape(tmp_path):
    port = free_port()
    config = simple_config(port, hello_routes(), logs={})
    with running_server(config, tmp_path, [port]) as server:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/logged?q=1", headers={"User-Agent": "probe"})
        connection.getresponse().read()
        time.sleep(0.3)
        entries = [
            json.loads(line[line.index("{") :])
            for line in server.log().splitlines()
            if '"handled request"' in line
        ]
    assert entries, server.log()
    entry = entries[-1]
    assert entry["logger"] == "http.log.access"
    assert entry["msg"] == "handled request"
    assert entry["status"] == 200
    assert entry["size"] == len("hello /logged")
    assert entry["request"]["uri"] == "/logged?q=1"
    assert entry["request"]["method"] == "GET"
    assert entry["request"]["proto"] == "HTTP/1.1"
    assert entry["request"]["headers"]["User-Agent"] == ["probe"]
    assert entry["resp_headers"]["Server"] == ["Caddy"]


def access_entries(server):
    return [
        json.loads(line[line.index("{") :])
        for line in server.log().splitlines()
        if '"handled request"' in line
    ]


@pytest.mark.parametrize("credentials", [False, True])
def test_access_log_leaves_credentials_out(tmp_path, credentials):
    """As Caddy 2.6.2 (checked against it): Authorization, Proxy-Authorization, Cookie
    and Set-Cookie are logged as [] unless should_log_credentials; so is a file_sync
    token offered as a WebSocket subprotocol."""
    port = free_port()
    logs = {"should_log_credentials": True} if credentials else {}
    with running_server(simple_config(port, hello_routes(), logs=logs), tmp_path, [port]) as srv:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        headers = {
            "Authorization": "Bearer secret-token-1",
            "Cookie": "session=secret-cookie-2",
            "Sec-WebSocket-Protocol": "caddytw.events, caddytw.bearer.c2VjcmV0LTM",
        }
        connection.request("GET", "/x", headers=headers)
        connection.getresponse().read()
        time.sleep(0.3)
        entry = access_entries(srv)[-1]
    logged = entry["request"]["headers"]
    if credentials:
        assert logged["Authorization"] == ["Bearer secret-token-1"]
        assert logged["Sec-Websocket-Protocol"] == [headers["Sec-WebSocket-Protocol"]]
    else:
        assert logged["Authorization"] == [] and logged["Cookie"] == []
        assert logged["Sec-Websocket-Protocol"] == ["caddytw.events, caddytw.bearer.REDACTED"]
        assert "secret" not in json.dumps(entry) and "c2VjcmV0LTM" not in json.dumps(entry)


def test_malformed_requests_never_get_a_traceback(tmp_path):
    port = free_port()
    with running_server(simple_config(port, hello_routes()), tmp_path, [port]) as server:
        probes = [
            b"GET /%zz%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n",
            b"BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"nonsense\r\n\r\n",
        ]
        for probe in probes:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(probe)
                data = recv_all(sock)
            assert b"Traceback" not in data
            assert data == b"" or data.startswith(b"HTTP/1.1 ")
        assert "Traceback" not in server.log()


def test_caddyfile_runs_directly_and_adapts(tmp_path):
    port = free_port()
    caddyfile = f'http://127.0.0.1:{port} {{\n\trespond /hi "hi from caddyfile"\n}}\n'
    with running_server(caddyfile, tmp_path, [port], config_name="Caddyfile") as server:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/hi")
        assert connection.getresponse().read() == b"hi from caddyfile"
        assert "Traceback" not in server.log()
    result = subprocess.run(
        [sys.executable, "-m", "caddytw", "adapt", "--config", str(tmp_path / "Caddyfile")],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["apps"]["http"]["servers"]


def test_read_timeout_drops_a_trickling_body(tmp_path):
    port = free_port()
    config = simple_config(port, hello_routes(), read_timeout="700ms")
    with (
        running_server(config, tmp_path, [port]),
        socket.create_connection(("127.0.0.1", port)) as slow,
    ):
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        # The handler answers at the end of the head without reading the body (as in
        # Caddy); the connection is dropped when the body does not complete in time.
        answer = recv_all(slow, timeout=10)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 200 ")
        slow.settimeout(0.5)
        assert slow.recv(1) == b""  # closed, not kept alive
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/fine", body=b"x" * 100)
        assert connection.getresponse().read() == b"hello /fine"
