"""The real ``twistd -n caddy``: a TLS server from config serves HTTP/3 on the same port."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from ssl import create_default_context

from tests.h3.conftest import make_certificate
from tests.support.ports import free_port
from tests.support.server import running_server, server_env

CLIENT = Path(__file__).with_name("h3client.py")


def test_tls_server_from_config_serves_h3_and_advertises_it(tmp_path):
    cert, key = make_certificate(["localhost"], tmp_path)
    port = free_port()
    config = {
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "handler": "static_response",
                                        "body": "{http.request.proto} {http.request.uri.path}",
                                    }
                                ]
                            }
                        ],
                        "tls_connection_policies": [{}],
                    }
                }
            },
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }
    with running_server(config, tmp_path, [port]) as server:
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "server_name": "localhost",
            "connections": [[{"path": "/over-quic"}]],
        }
        result = subprocess.run(
            [sys.executable, str(CLIENT), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=60,
            env=server_env(),
        )
        assert result.returncode == 0, result.stderr + server.log()
        answer = json.loads(result.stdout)["connections"][0][0]
        assert answer["status"] == 200
        assert answer["body"] == "HTTP/3.0 /over-quic"
        context = create_default_context(cafile=str(cert))
        with urllib.request.urlopen(
            f"https://localhost:{port}/h1", context=context, timeout=10
        ) as response:
            assert response.read() == b"HTTP/1.1 /h1"
            assert response.headers["Alt-Svc"] == f'h3=":{port}"; ma=2592000'
