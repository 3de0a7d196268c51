"""Fixtures for the HTTP/3 tests: a self-signed certificate and a running server."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ports import free_port, wait_for_port
from tests.support.server import REPO, server_env

HERE = Path(__file__).resolve().parent


def make_certificate(names: list[str], directory: Path, stem: str = "cert") -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for ``names`` written as PEM (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class H3Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, stats_port: int, log: Path):
        self.process = process
        self.port = port
        self.stats_port = stats_port
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def client(self, spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """Run tests/h3/h3client.py against this server; its JSON output."""
        from tests.h3.h3client import run

        return run({"port": self.port, **spec}, timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_h3_server(
    routes: list[Any], workdir: Path, *, idle_timeout: str | None = None, retry: bool = False
) -> H3Server:
    port = free_port()
    stats_port = free_port()
    cert, key = make_certificate(["localhost", "127.0.0.1"], workdir)
    server: dict[str, Any] = {"listen": [f"127.0.0.1:{port}"], "routes": routes}
    if idle_timeout:
        server["idle_timeout"] = idle_timeout
    config = {"apps": {"http": {"servers": {"srv0": server}}}}
    config_path = workdir / "caddy.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / f"h3-server-{time.monotonic_ns()}.log"
    args = [str(config_path), str(cert), str(key), str(stats_port)]
    if retry:
        args.append("--retry")
    env = server_env()
    env["PYTHONPATH"] = f"{HERE / 'plugin_root'}:{REPO}:{env.get('PYTHONPATH', '')}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.h3.launcher", *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server_obj = H3Server(process, port, stats_port, log_path)
    if not (wait_for_port(port, 20) and wait_for_port(stats_port, 20)):
        server_obj.stop()
        raise RuntimeError(f"h3 server did not start:\n{server_obj.log()}")
    return server_obj


@pytest.fixture
def h3_server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[H3Server] = []

    def start(routes: list[Any], **kwargs: Any) -> H3Server:
        server = start_h3_server(routes, tmp_path, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
