"""Configs several tests and benchmarks share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.ports import free_port


def plain_and_tls(
    plain: int,
    tls: int,
    routes: list[Any],
    cert: Path,
    key: Path,
    storage: Path,
    *,
    tls_protocols: list[str] | None = None,
) -> dict[str, Any]:
    """The same ``routes`` on an h1/h2/h2c listener at ``plain`` and a TLS listener at
    ``tls`` serving the certificate ``cert``/``key`` (Caddy runs the same JSON)."""
    tls_server: dict[str, Any] = {
        "listen": [f"127.0.0.1:{tls}"],
        "routes": routes,
        "tls_connection_policies": [{}],
        "automatic_https": {"disable": True},
    }
    if tls_protocols is not None:
        tls_server["protocols"] = tls_protocols
    return {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(storage)},
        "apps": {
            "http": {
                "http_port": free_port(),
                "https_port": tls,
                "servers": {
                    "plain": {
                        "listen": [f"127.0.0.1:{plain}"],
                        "routes": routes,
                        "protocols": ["h1", "h2", "h2c"],
                        "automatic_https": {"disable": True},
                    },
                    "tls": tls_server,
                },
            },
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }
