"""``localhost`` with no TLS config: Caddy's internal issuer, trusted through its root."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.client import client_context, handshake, https_get


def test_localhost_gets_a_certificate_from_the_local_ca(tmp_path: Path):
    https_port, http_port = free_port(), free_port()
    storage = tmp_path / "storage"
    config = {
        "storage": {"module": "file_system", "root": str(storage)},
        "apps": {
            "http": {
                "http_port": http_port,
                "https_port": https_port,
                "servers": {
                    "site": {
                        "listen": [f"127.0.0.1:{https_port}"],
                        "routes": [
                            {
                                "match": [{"host": ["localhost"]}],
                                "handle": [{"handler": "static_response", "body": "local"}],
                            }
                        ],
                    }
                },
            }
        },
    }
    root = storage / "pki" / "authorities" / "local" / "root.crt"
    with running_server(config, tmp_path, [https_port, http_port]) as server:
        deadline = time.monotonic() + 20
        while True:
            try:
                result = handshake(https_port, "localhost", client_context(str(root)))
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(server.log())
                time.sleep(0.2)
        assert result.names == ["localhost"]
        status, body, _ = https_get(https_port, "localhost", client_context(str(root)))
        assert (status, body) == (200, b"local")
    leaf = (storage / "certificates" / "local" / "localhost" / "localhost.crt").read_bytes()
    cert = x509.load_pem_x509_certificates(leaf)[0]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() <= 12 * 3600 + 600  # short-lived, as Caddy's
