"""Automatic HTTPS end to end against pebble: HTTP-01, TLS-ALPN-01, renewal, restart."""

from __future__ import annotations

import os
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.server import ServerProcess, running_server
from tests.tls.client import client_context, handshake, https_get
from tests.tls.pebble import Pebble, running_pebble

NAME = "localhost"


def acme_config(
    pebble: Pebble,
    http_port: int,
    https_port: int,
    storage: Path,
    *,
    challenges: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    automation: dict[str, Any] | None = None,
    automatic_https: dict[str, Any] | None = None,
) -> dict[str, Any]:
    issuer = {
        "module": "acme",
        "ca": pebble.directory,
        "email": "admin@example.com",
        "trusted_roots_pem_files": [pebble.ca_file],
        "challenges": challenges or {},
    }
    return {
        "storage": {"module": "file_system", "root": str(storage)},
        "apps": {
            "http": {
                "http_port": http_port,
                "https_port": https_port,
                "servers": {
                    "site": {
                        "listen": [f"127.0.0.1:{https_port}"],
                        "automatic_https": automatic_https or {},
                        "routes": [
                            {
                                "match": [{"host": [NAME]}],
                                "handle": [
                                    {
                                        "handler": "static_response",
                                        "body": "secure {http.request.proto}",
                                    }
                                ],
                            }
                        ],
                    }
                },
            },
            "tls": {
                "automation": {
                    "policies": [{"subjects": [NAME], "issuers": [issuer], **(policy or {})}],
                    **(automation or {}),
                }
            },
        },
    }


def wait_for_acme_certificate(
    server: ServerProcess, port: int, root: Path, not_serial: int | None = None
) -> int:
    """Poll until the server presents a certificate for NAME chaining to ``root``."""
    context = client_context(str(root))
    deadline = time.monotonic() + 40
    while True:
        try:
            serial = handshake(port, NAME, context).serial
            if serial != not_serial:
                return serial
        except OSError:
            pass
        if time.monotonic() > deadline or server.process.poll() is not None:
            pytest.fail("no ACME certificate was served:\n" + server.log())
        time.sleep(0.3)


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


def test_http01_order_serve_redirect_and_restart(tmp_path: Path, ports: tuple[int, int]):
    http_port, https_port = ports
    storage = tmp_path / "storage"
    with running_pebble(tmp_path / "pebble", http_port, https_port) as pebble:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        config = acme_config(
            pebble, http_port, https_port, storage, challenges={"tls-alpn": {"disabled": True}}
        )
        with running_server(config, tmp_path, [https_port, http_port]) as server:
            serial = wait_for_acme_certificate(server, https_port, root)
            status, body, _ = https_get(https_port, NAME, client_context(str(root)), "/")
            assert (status, body) == (200, b"secure HTTP/1.1")
            # HTTP -> HTTPS, permanent and method-preserving.
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/a/b?c=d", headers={"Host": f"{NAME}:{http_port}"}
            )
            with pytest.raises(urllib.error.HTTPError) as redirect:
                urllib.request.build_opener(NoRedirect).open(request, timeout=10)
            assert redirect.value.code == 308
            assert redirect.value.headers["Location"] == f"https://{NAME}:{https_port}/a/b?c=d"
            assert "ordered certificate for localhost" in server.log()
            assert "serving http-01 challenge" in server.log()
            assert "tls-alpn-01" not in server.log()
        # Stored in Caddy's layout, key private.
        issuer_dirs = list((storage / "certificates").iterdir())
        assert len(issuer_dirs) == 1
        cert_dir = issuer_dirs[0] / NAME
        assert sorted(p.name for p in cert_dir.iterdir()) == [
            "localhost.crt",
            "localhost.json",
            "localhost.key",
        ]
        assert stat.S_IMODE(os.stat(cert_dir / "localhost.key").st_mode) == 0o600
        # A restart serves the stored certificate at once and orders nothing.
        with running_server(config, tmp_path, [https_port, http_port]) as server:
            assert handshake(https_port, NAME, client_context(str(root))).serial == serial
            time.sleep(0.5)
            assert "ordered certificate" not in server.log()
            assert "loaded certificate for localhost from storage" in server.log()


def test_tls_alpn01_order_and_renewal(tmp_path: Path, ports: tuple[int, int]):
    http_port, https_port = ports
    with running_pebble(tmp_path / "pebble", http_port, https_port) as pebble:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        config = acme_config(
            pebble,
            http_port,
            https_port,
            tmp_path / "storage",
            challenges={"http": {"disabled": True}},
            # Every certificate is always "due": each check renews it.
            policy={"renewal_window_ratio": 1.0},
            automation={"renew_interval": "1s"},
            # Nothing listens on the HTTP port: only TLS-ALPN-01 can succeed.
            automatic_https={"disable_redirects": True},
        )
        with running_server(config, tmp_path, [https_port]) as server:
            first = wait_for_acme_certificate(server, https_port, root)
            renewed = wait_for_acme_certificate(server, https_port, root, not_serial=first)
            assert renewed != first
            log = server.log()
        assert "serving tls-alpn-01 challenge for localhost" in log
        assert "http-01" not in log
        assert log.count("ordered certificate for localhost") >= 2


def test_http01_on_alternate_port_without_redirect_server(tmp_path: Path):
    """No server on http_port: the challenge gets its own listener (alternate_port)."""
    http_port, https_port, solver_port = free_port(), free_port(), free_port()
    with running_pebble(tmp_path / "pebble", solver_port, https_port) as pebble:
        root = tmp_path / "pebble-root.pem"
        root.write_bytes(pebble.root_pem())
        config = acme_config(
            pebble,
            http_port,
            https_port,
            tmp_path / "storage",
            challenges={"tls-alpn": {"disabled": True}, "http": {"alternate_port": solver_port}},
            automatic_https={"disable_redirects": True},
        )
        with running_server(config, tmp_path, [https_port, solver_port]) as server:
            wait_for_acme_certificate(server, https_port, root)
            assert "serving http-01 challenge" in server.log()
            # The solver answers nothing else.
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{solver_port}/", timeout=10)
            assert missing.value.code == 404


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
