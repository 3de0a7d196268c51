"""Fixtures for TLS tests: a test CA, certificates on disk, a TLS server process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tls.pki import TestCA


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


def echo_routes() -> list[dict[str, Any]]:
    return [
        {
            "handle": [
                {
                    "handler": "static_response",
                    "body": "{http.request.host} {http.request.proto} {http.request.scheme}",
                }
            ]
        }
    ]


def tls_config(
    port: int,
    http_port: int,
    storage: Path,
    *,
    load_files: list[dict[str, Any]] | None = None,
    policies: list[dict[str, Any]] | None = None,
    routes: list[dict[str, Any]] | None = None,
    tls_extra: dict[str, Any] | None = None,
    server_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One server on 127.0.0.1:port with TLS; storage in the test's directory."""
    server: dict[str, Any] = {
        "listen": [f"127.0.0.1:{port}"],
        "routes": routes if routes is not None else echo_routes(),
        "tls_connection_policies": policies if policies is not None else [{}],
    }
    server.update(server_extra or {})
    tls: dict[str, Any] = dict(tls_extra or {})
    if load_files:
        tls.setdefault("certificates", {})["load_files"] = load_files
    return {
        "storage": {"module": "file_system", "root": str(storage)},
        "apps": {
            "http": {"http_port": http_port, "https_port": port, "servers": {"srv0": server}},
            "tls": tls,
        },
    }
