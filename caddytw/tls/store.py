"""Everything the TLS app keeps between runs, behind one interface: :class:`Storage`.

The interface is certmagic's: byte values under slash-separated keys, plus a lock per
key, so every storage module (``file_system`` here, ``postgres`` in
:mod:`caddytw.tls.pgstore`) gets the same layout, the same export and the same rules::

    certificates/<issuer>/<name>/<name>.crt|.key|.json
    acme/<issuer>/users/<email or default>/<user>.key
    pki/authorities/<ca>/root.crt|root.key
    ocsp/<name>-<serial>
    challenge_tokens/http-01/<token>.json          (pending challenges, so any node
    challenge_tokens/tls-alpn-01/<name>.json        sharing the storage can answer them)

Keeping Caddy's layout means an operator finds files where they expect them, and a
``caddytw storage export`` of one module imports into another. A subclass implements
five primitives (:meth:`Storage.load`, :meth:`~Storage.store`, :meth:`~Storage.delete`,
:meth:`~Storage.list`, :meth:`~Storage.lock`); the typed helpers (certificates,
accounts, OCSP, challenges) are written once on top of them.

Locks serialise the work that must happen once across every process sharing the
storage (ordering a certificate, creating an account or a root): the second holder
finds the first one's result when it gets the lock. A lock dies with its holder (an
``flock`` with the process, a PostgreSQL advisory lock with the session), so a crashed
node never blocks the others for good.

A lock that dies with its *session* can also die under a holder that is still running
(its database connection dropped mid-order): another node then takes the lock and
orders too. So a lock hands out a :class:`Fence`, and the certificate is saved with it
(:meth:`Storage.save_certificate`): a storage whose locks can be lost that way refuses
a save under a lost lock with :class:`LockLost` (the stale holder discards its result
and uses the other node's), so the last writer cannot silently overwrite the
certificate of the node that holds the lock now. All methods block: call them from
threads (or at startup, before the reactor runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_SAFE = re.compile(r"[^a-z0-9_.\-@]")
CHALLENGES = "challenge_tokens"
HTTP01 = "http-01"
TLS_ALPN01 = "tls-alpn-01"
#: An ACME token (base64url); anything else is never a challenge key segment.
TOKEN = re.compile(r"[A-Za-z0-9_\-]{1,200}")


def safe_key(name: str) -> str:
    """A file name for a domain or account (wildcards become ``wildcard_``, as certmagic)."""
    text = name.lower().replace("*", "wildcard_")
    return _SAFE.sub("_", text) or "_"


def check_key(key: str) -> str:
    """``key`` if it is a relative slash path without ``.``/``..`` or empty segments
    (what a storage may hold and an import may write)."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts) or "\x00" in key:
        raise ValueError(f"invalid storage key {key!r}")
    return key


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate as stored: PEM chain, PEM key, metadata, and the file paths when
    the storage is a file system (QUIC and reloads want files; other storages: None)."""

    name: str
    chain_pem: bytes
    key_pem: bytes
    meta: dict[str, Any]
    cert_path: str | None = None
    key_path: str | None = None


class LockLost(Exception):
    """The lock a write was fenced with is no longer held by the writer (its session
    ended, another holder may have taken it): the write was refused."""


@dataclass(frozen=True)
class Fence:
    """What :meth:`Storage.lock` hands its holder: the lock's name and a token that
    grows with every acquisition of that name (0 where locks cannot be lost while
    their holder runs, as ``flock``)."""

    key: str
    token: int = 0


class Storage(ABC):
    """A storage module: byte values under slash keys, and locks shared with every
    process that uses the same storage."""

    #: True when other nodes may use this storage at the same time (they then need to
    #: learn about challenges this node publishes).
    shared = False

    # -- the primitives --------------------------------------------------------------

    @abstractmethod
    def load(self, key: str) -> bytes | None:
        """The value under ``key``, or None."""

    @abstractmethod
    def store(self, key: str, value: bytes, private: bool = False) -> None:
        """Write ``value`` atomically (a reader sees the old or the new one);
        ``private`` values (keys) are readable by this user only where that applies."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (a folder-like prefix, ``""`` for all), sorted."""

    @abstractmethod
    def lock(self, key: str) -> contextlib.AbstractContextManager[Fence]:
        """Hold an exclusive lock shared with every process using this storage."""

    def store_fenced(self, items: Sequence[tuple[str, bytes, bool]], fence: Fence | None) -> None:
        """Write ``(key, value, private)`` items in order, only while ``fence``'s lock is
        still held (else :class:`LockLost`). Here a lock cannot be lost while its holder
        runs, so nothing is checked; storages whose locks can be (a database session
        that drops) check and write in one transaction."""
        for key, value, private in items:
            self.store(key, value, private=private)

    def close(self) -> None:  # noqa: B027 (most storages hold nothing to release)
        """Release connections (nothing to do for files)."""

    def describe(self) -> str:
        return type(self).__name__

    def local_path(self, key: str) -> str | None:
        """The file holding ``key`` when the storage is a file system, else None."""
        return None

    # -- certificates ----------------------------------------------------------------

    @staticmethod
    def cert_keys(issuer: str, name: str) -> tuple[str, str, str]:
        base = f"certificates/{safe_key(issuer)}/{safe_key(name)}/{safe_key(name)}"
        return base + ".crt", base + ".key", base + ".json"

    def load_certificate(self, issuer: str, name: str) -> StoredCertificate | None:
        cert_key, key_key, meta_key = self.cert_keys(issuer, name)
        chain, key = self.load(cert_key), self.load(key_key)
        if chain is None or key is None:
            return None
        meta: dict[str, Any] = {}
        raw = self.load(meta_key)
        if raw is not None:
            with contextlib.suppress(ValueError):
                loaded = json.loads(raw)
                meta = loaded if isinstance(loaded, dict) else {}
        return StoredCertificate(
            name, chain, key, meta, self.local_path(cert_key), self.local_path(key_key)
        )

    def save_certificate(
        self,
        issuer: str,
        name: str,
        chain_pem: bytes,
        key_pem: bytes,
        meta: dict[str, Any],
        fence: Fence | None = None,
    ) -> StoredCertificate:
        """Store a certificate; with ``fence`` (the order's lock) only if that lock is
        still held, else :class:`LockLost` and nothing is written."""
        cert_key, key_key, meta_key = self.cert_keys(issuer, name)
        # Key first: a reader that sees the new certificate must find its key.
        items = [
            (key_key, key_pem, True),
            (cert_key, chain_pem, False),
            (meta_key, json.dumps(meta, indent=2, sort_keys=True).encode(), False),
        ]
        self.store_fenced(items, fence)
        return StoredCertificate(
            name, chain_pem, key_pem, meta, self.local_path(cert_key), self.local_path(key_key)
        )

    # -- accounts, authorities, OCSP -------------------------------------------------

    @staticmethod
    def account_key_key(issuer: str, email: str) -> str:
        user = safe_key(email or "default")
        return f"acme/{safe_key(issuer)}/users/{user}/{user}.key"

    @staticmethod
    def authority_keys(ca: str) -> tuple[str, str]:
        base = f"pki/authorities/{safe_key(ca)}"
        return base + "/root.crt", base + "/root.key"

    @staticmethod
    def ocsp_key(name: str, serial: int) -> str:
        return f"ocsp/{safe_key(name)}-{serial:x}"

    def load_ocsp(self, name: str, serial: int) -> bytes | None:
        """The stapled OCSP response kept for a certificate (DER), if any."""
        return self.load(self.ocsp_key(name, serial))

    def save_ocsp(self, name: str, serial: int, response_der: bytes) -> None:
        self.store(self.ocsp_key(name, serial), response_der)

    # -- pending challenges ----------------------------------------------------------

    @staticmethod
    def challenge_key(kind: str, ident: str) -> str:
        return f"{CHALLENGES}/{kind}/{safe_key(ident) if kind != HTTP01 else _token(ident)}.json"

    def save_challenge(self, kind: str, ident: str, data: dict[str, str]) -> None:
        """Publish a pending challenge (``http-01`` by token, ``tls-alpn-01`` by name)."""
        self.store(self.challenge_key(kind, ident), json.dumps(data).encode(), private=True)

    def delete_challenge(self, kind: str, ident: str) -> None:
        self.delete(self.challenge_key(kind, ident))

    def load_challenges(self) -> dict[str, dict[str, dict[str, str]]]:
        """Every pending challenge: ``{"http-01": {token: data}, "tls-alpn-01": {...}}``."""
        return parse_challenges((key, self.load(key)) for key in self.list(CHALLENGES))

    def await_challenge(self, kind: str, ident: str) -> None:  # noqa: B027
        """Return once every other node using this storage can answer the challenge
        just saved (called in the ordering thread before the CA is told); at once for
        storages no other node shares."""

    def acknowledge_challenges(  # noqa: B027 (nothing to record where nobody waits)
        self, found: dict[str, dict[str, dict[str, str]]]
    ) -> None:
        """Record that this node now answers the pending challenges ``found`` (what
        :meth:`load_challenges` returned), for :meth:`await_challenge` on other nodes."""


def parse_challenges(
    items: Iterable[tuple[str, bytes | None]],
) -> dict[str, dict[str, dict[str, str]]]:
    """:meth:`Storage.load_challenges` from (key, value) pairs; malformed ones skipped."""
    found: dict[str, dict[str, dict[str, str]]] = {HTTP01: {}, TLS_ALPN01: {}}
    for key, raw in items:
        parts = key.split("/")
        if len(parts) != 3 or parts[1] not in found or not parts[2].endswith(".json"):
            continue
        if raw is None:
            continue
        with contextlib.suppress(ValueError):
            data = json.loads(raw)
            if isinstance(data, dict):
                found[parts[1]][parts[2][: -len(".json")]] = data
    return found


def _token(token: str) -> str:
    """ACME tokens are base64url; anything else cannot be a key segment."""
    if not TOKEN.fullmatch(token):
        raise ValueError(f"invalid challenge token {token!r}")
    return token


class FileStorage(Storage):
    """The ``file_system`` storage rooted at ``root`` (the default, Caddy's data dir).

    Private keys are written 0600 and every write goes through a temporary file and
    ``rename`` so a reader never sees half a key. Locks are ``flock`` on files under
    ``locks/``, so processes on one machine (or on a file system with working
    ``flock``) share them.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def describe(self) -> str:
        return self.root

    def path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def local_path(self, key: str) -> str | None:
        return self.path(key)

    def load(self, key: str) -> bytes | None:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def store(self, key: str, value: bytes, private: bool = False) -> None:
        write_file(self.path(key), value, private=private)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self.path(key))

    def list(self, prefix: str = "") -> list[str]:
        top = self.path(prefix) if prefix else self.root
        keys: list[str] = []
        for folder, dirs, files in os.walk(top):
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            if rel == "locks":
                dirs[:] = []
                continue
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                keys.append(name if rel == "." else f"{rel}/{name}")
        return sorted(keys)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[Fence]:
        path = os.path.join(self.root, "locks", safe_key(key) + ".lock")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield Fence(key)
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
