"""Run Debian's ``pebble`` (a test ACME CA) on loopback for end-to-end tests.

Pebble validates challenges against ``httpPort``/``tlsPort`` on the address the name
resolves to: ``localhost`` is 127.0.0.1 from /etc/hosts, so no DNS server is needed.
Authorization reuse is turned off so every order really runs its challenge, and nonce
rejection is off so a run does not depend on the client's retry luck.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port, wait_for_port
from tests.tls.pki import TestCA


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a helper server we started, SIGKILL if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Pebble:
    directory: str
    management: int
    ca_file: str  # trusts pebble's own HTTPS endpoint
    process: subprocess.Popen[bytes]
    log_path: Path

    def root_pem(self) -> bytes:
        """The root that issues certificates (new on every pebble start)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        url = f"https://127.0.0.1:{self.management}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return bytes(response.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.root_pem())
        return path

    def issuer(self, challenges: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """An ``acme`` issuer JSON for this pebble."""
        return {
            "module": "acme",
            "ca": self.directory,
            "trusted_roots_pem_files": [self.ca_file],
            "challenges": challenges,
            **extra,
        }


@contextmanager
def running_pebble(
    workdir: Path,
    http_port: int,
    tls_port: int,
    *,
    eab_keys: dict[str, str] | None = None,
    dns_server: str | None = None,
) -> Iterator[Pebble]:
    """``eab_keys`` (key id -> base64url MAC key) makes EAB required; ``dns_server``
    (``host:port``) is where pebble resolves names and looks up DNS-01 records."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = TestCA("pebble test CA")
    cert, key, _ = ca.write_leaf(workdir, "pebble", ["localhost", "127.0.0.1"])
    ca_file = ca.write(workdir / "pebble-ca.pem")
    listen, management = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{listen}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
            "externalAccountMACKeys": eab_keys or {},
        }
    }
    config_path = workdir / "pebble.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ)
    env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    log_path = workdir / "pebble.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["pebble", "-config", str(config_path)]
            + (["-dnsserver", dns_server] if dns_server else []),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        if not (wait_for_port(listen, 15) and wait_for_port(management, 15)):
            raise RuntimeError("pebble did not start:\n" + log_path.read_text())
        yield Pebble(f"https://127.0.0.1:{listen}/dir", management, str(ca_file), process, log_path)
    finally:
        stop_process(process)


@contextmanager
def running_challtestsrv(workdir: Path) -> Iterator[str]:
    """pebble-challtestsrv answering every name with 127.0.0.1; yields its address."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "challtestsrv.log", "wb") as log:
        process = subprocess.Popen(
            [
                "pebble-challtestsrv",
                "-dns01",
                f"127.0.0.1:{port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{free_port()}",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port(port, 15):
            raise RuntimeError("challtestsrv did not start")
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process)
