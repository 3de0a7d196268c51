"""Certificates, keys and ACME accounts on disk, in Caddy's (certmagic's) layout.

::

    ROOT/certificates/<issuer>/<name>/<name>.crt|.key|.json
    ROOT/acme/<issuer>/users/<email or default>/<user>.key
    ROOT/pki/authorities/<ca>/root.crt|root.key
    ROOT/locks/<key>.lock

Keeping Caddy's layout means an operator finds files where they expect them. Private
keys are written 0600 and every write goes through a temporary file and ``rename`` so
a reader never sees half a key. Locks are ``flock`` on files under ``locks/``: two
processes sharing the storage serialise their orders for a name (the second one finds
the first one's certificate when it gets the lock). All methods block: call them from
threads (or at startup, before the reactor runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_SAFE = re.compile(r"[^a-z0-9_.\-@]")


def safe_key(name: str) -> str:
    """A file name for a domain or account (wildcards become ``wildcard_``, as certmagic)."""
    text = name.lower().replace("*", "wildcard_")
    return _SAFE.sub("_", text) or "_"


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate as stored: PEM chain, PEM key, metadata and the file paths."""

    name: str
    chain_pem: bytes
    key_pem: bytes
    meta: dict[str, Any]
    cert_path: str
    key_path: str


class Storage:
    """A ``file_system`` storage rooted at ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    # -- paths -----------------------------------------------------------------------

    def cert_dir(self, issuer: str, name: str) -> str:
        return os.path.join(self.root, "certificates", safe_key(issuer), safe_key(name))

    def cert_paths(self, issuer: str, name: str) -> tuple[str, str, str]:
        base = os.path.join(self.cert_dir(issuer, name), safe_key(name))
        return base + ".crt", base + ".key", base + ".json"

    def account_key_path(self, issuer: str, email: str) -> str:
        user = safe_key(email or "default")
        return os.path.join(self.root, "acme", safe_key(issuer), "users", user, user + ".key")

    def authority_dir(self, ca: str) -> str:
        return os.path.join(self.root, "pki", "authorities", safe_key(ca))

    # -- certificates ----------------------------------------------------------------

    def load_certificate(self, issuer: str, name: str) -> StoredCertificate | None:
        cert_path, key_path, meta_path = self.cert_paths(issuer, name)
        try:
            with open(cert_path, "rb") as f:
                chain = f.read()
            with open(key_path, "rb") as f:
                key = f.read()
        except FileNotFoundError:
            return None
        meta: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError), open(meta_path) as f:
            meta = json.load(f)
        return StoredCertificate(name, chain, key, meta, cert_path, key_path)

    def save_certificate(
        self, issuer: str, name: str, chain_pem: bytes, key_pem: bytes, meta: dict[str, Any]
    ) -> StoredCertificate:
        cert_path, key_path, meta_path = self.cert_paths(issuer, name)
        # Key first: a reader that sees the new certificate must find its key.
        write_file(key_path, key_pem, private=True)
        write_file(cert_path, chain_pem)
        write_file(meta_path, json.dumps(meta, indent=2, sort_keys=True).encode())
        return StoredCertificate(name, chain_pem, key_pem, meta, cert_path, key_path)

    # -- account keys and authorities ------------------------------------------------

    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes, private: bool = False) -> None:
        write_file(path, data, private=private)

    # -- locks -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold an exclusive lock shared with other processes using this storage."""
        path = os.path.join(self.root, "locks", safe_key(key) + ".lock")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def write_file(path: str, data: bytes, private: bool = False) -> None:
    """Write atomically (temp file + rename); ``private`` files are 0600 from birth."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
