"""Run Debian's ``knotd`` (Knot DNS) on loopback as an authoritative server taking
RFC 2136 updates signed with a TSIG key: the peer of the ``rfc2136`` DNS provider."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_for_port
from tests.tls.pebble import stop_process

KEY_NAME = "acme-key."


@dataclass
class Knot:
    address: str  # host:port, TCP and UDP
    zone: str
    key_name: str
    key: str  # base64 secret
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def knotd() -> str | None:
    return shutil.which("knotd") or (
        "/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd") else None
    )


@contextmanager
def running_knot(workdir: Path, zone: str = "example.test") -> Iterator[Knot]:
    binary = knotd()
    if binary is None:
        raise RuntimeError("knotd is not installed (apt-get install knot)")
    (workdir / "db").mkdir(parents=True, exist_ok=True)  # the journal of the updates
    port = free_port()
    secret = base64.b64encode(os.urandom(32)).decode()
    (workdir / f"{zone}.zone").write_text(
        f"$ORIGIN {zone}.\n$TTL 60\n"
        f"@ SOA ns.{zone}. admin.{zone}. 1 60 60 600 60\n"
        "@ NS ns\nns A 127.0.0.1\nwww A 127.0.0.1\n"
    )
    (workdir / "knot.conf").write_text(
        f"""server:
    rundir: "{workdir}"
    listen: 127.0.0.1@{port}
control:
    listen: "{workdir}/knot.sock"
database:
    storage: "{workdir}/db"
log:
  - target: stderr
    any: info
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: acme-update
    key: {KEY_NAME}
    action: update
template:
  - id: default
    storage: "{workdir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {zone}
    acl: acme-update
"""
    )
    log_path = workdir / "knot.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, "-c", str(workdir / "knot.conf")], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        if not wait_for_port(port, 15):
            raise RuntimeError("knotd did not start:\n" + log_path.read_text())
        yield Knot(f"127.0.0.1:{port}", zone, KEY_NAME, secret, log_path)
    finally:
        stop_process(process)
