"""HTTP/2 to upstreams: ``reverse_proxy h2c://...`` (``transport.versions: ["h2c",
"2"]``), prior knowledge to a real h2c upstream (Debian's caddy with ``protocols h1
h2c``), and ``versions: ["2"]`` over TLS (ALPN h2) to Debian's caddy serving HTTPS."""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from caddytw.caddyfile import adapt
from tests.compat.harness import CADDY
from tests.support.ports import free_port, wait_for_port
from tests.support.server import running_server, simple_config

pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")

UPSTREAM = """{{
    admin off
    servers {{
        protocols h1 h2c
    }}
}}
http://127.0.0.1:{port} {{
    bind 127.0.0.1
    root * {root}
    file_server /big.bin
    respond /echo "{{http.request.proto}} {{method}} {{path}} {{header.X-A}} {{http.request.body}}"
}}
http:// {{
    bind unix/{root}/up.sock
    respond "unix {{http.request.proto}} {{path}}"
}}
"""


PROXY = """http://127.0.0.1:{port} {{
    bind 127.0.0.1
    handle_path /u/* {{
        reverse_proxy unix+h2c/{sock}
    }}
    handle {{
        reverse_proxy h2c://127.0.0.1:{upstream}
    }}
}}
"""


@contextmanager
def caddy_upstream(workdir: Path, template: str, **values: Any) -> Iterator[int]:
    """Debian's caddy running ``template`` (filled with ``port`` and ``values``)."""
    port = free_port()
    (workdir / "Caddyfile").write_text(template.format(port=port, **values))
    env = {"HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir), "XDG_DATA_HOME": str(workdir)}
    with open(workdir / "caddy.log", "wb") as log:
        process = subprocess.Popen(
            [str(CADDY), "run", "--config", "Caddyfile"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for_port(port, timeout=15), (workdir / "caddy.log").read_text()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def fetch(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"X-A": "a1"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_proxied_over_h2c_with_flow_control_both_ways(tmp_path: Path) -> None:
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    big = bytes(range(256)) * 12289  # ~3 MiB: many windows' worth back from upstream
    (upstream_dir / "big.bin").write_bytes(big)
    with caddy_upstream(upstream_dir, UPSTREAM, root=upstream_dir) as upstream:
        port = free_port()
        caddyfile = PROXY.format(port=port, upstream=upstream, sock=upstream_dir / "up.sock")
        config, _ = adapt(caddyfile)
        assert '"versions": ["h2c", "2"]' in json.dumps(config)
        with running_server(config, tmp_path, [port]) as server:
            assert fetch(port, "GET", "/echo") == (200, b"HTTP/2.0 GET /echo a1 ")
            # A body larger than HTTP/2's initial 64 KiB window goes out in pieces.
            upload = b"x" * 300_000
            status, body = fetch(port, "POST", "/echo", upload)
            assert (status, body) == (200, b"HTTP/2.0 POST /echo a1 " + upload)
            status, body = fetch(port, "GET", "/big.bin")
            assert status == 200
            assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
            # Concurrent requests share the connection as streams.
            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: fetch(port, "GET", "/echo"), range(12)))
            assert set(answers) == {(200, b"HTTP/2.0 GET /echo a1 ")}
            # unix+h2c//path: HTTP/2 on a unix socket (Caddy's network name for it).
            assert fetch(port, "GET", "/u/x") == (200, b"unix HTTP/2.0 /x")
            assert "Traceback" not in server.log()


TLS_UPSTREAM = """{{
    admin off
    auto_https disable_redirects
    skip_install_trust
}}
https://localhost:{port} {{
    bind 127.0.0.1
    tls {cert} {key}
    respond "{{http.request.proto}} {{http.request.body}}"
}}
"""


def test_http2_over_tls_when_versions_is_2_alone(tmp_path: Path) -> None:
    """``versions: ["2"]`` over TLS: HTTP/2 chosen by ALPN; with 1.1 beside it (Caddy's
    default) either is valid and caddytw stays on HTTP/1.1."""
    from tests.h3.conftest import make_certificate

    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    cert, key = make_certificate(["localhost"], upstream_dir)
    with caddy_upstream(upstream_dir, TLS_UPSTREAM, cert=cert, key=key) as upstream:
        tls = {"server_name": "localhost", "root_ca_pem_files": [str(cert)]}

        def route(prefix: str, versions: list[str]) -> dict[str, Any]:
            transport = {"protocol": "http", "versions": versions, "tls": tls}
            handler = {
                "handler": "reverse_proxy",
                "upstreams": [{"dial": f"127.0.0.1:{upstream}"}],
                "transport": transport,
                "headers": {"request": {"set": {"Host": ["localhost"]}}},
            }
            return {"match": [{"path": [prefix + "*"]}], "handle": [handler]}

        port = free_port()
        routes = [route("/two/", ["2"]), route("/both/", ["1.1", "2"])]
        with running_server(simple_config(port, routes), tmp_path, [port]) as server:
            assert fetch(port, "GET", "/two/x") == (200, b"HTTP/2.0 ")
            assert fetch(port, "POST", "/two/x", b"y" * 100_000) == (
                200,
                b"HTTP/2.0 " + b"y" * 100_000,
            )
            assert fetch(port, "GET", "/both/x") == (200, b"HTTP/1.1 ")
            assert "Traceback" not in server.log()
