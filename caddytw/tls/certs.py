"""The certificates a process serves, and choosing one for a TLS ClientHello.

A :class:`Certificate` is one chain + key, parsed once. :class:`CertificateSelector`
holds every certificate in use (``load_files``, managed ones from ACME or the internal
CA) and answers "which certificate for this SNI name?" the way certmagic does: exact
name first, then a wildcard one label up, then (no SNI at all) any certificate.

File-loaded certificates are re-read when their files change on disk (checked at most
once per :data:`RECHECK_SECONDS` per certificate, at handshake time), and managed ones
are swapped in by :meth:`CertificateSelector.put` after a renewal: either way only new
connections see the new certificate, open ones keep theirs.

Other transports (HTTP/3) use :meth:`CertificateSelector.select` too; it is cheap and
must be called on the reactor thread.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from caddytw.admin import metrics
from caddytw.tls.config import CertificateSelection

RECHECK_SECONDS = 1.0


class CertificateError(Exception):
    """A certificate or key that cannot be used (unreadable, mismatched, expired...)."""


def _file_signature(path: str) -> tuple[int, int, int]:
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


@dataclass(eq=False)
class Certificate:
    """One certificate chain and its private key, ready to serve.

    ``chain_pem``/``key_pem`` are PEM bytes; ``certificates`` (leaf first) and
    ``private_key`` are the ``cryptography`` objects (what aioquic's
    ``QuicConfiguration`` takes); ``cert_path``/``key_path`` name the files when the
    certificate came from disk (storage or ``load_files``).
    """

    chain_pem: bytes
    key_pem: bytes
    certificates: list[x509.Certificate]
    private_key: Any
    names: tuple[str, ...]
    tags: tuple[str, ...] = ()
    cert_path: str | None = None
    key_path: str | None = None
    managed: bool = False
    signature: tuple[Any, ...] = ()
    contexts: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def not_before(self) -> datetime:
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @property
    def serial_number(self) -> int:
        return self.leaf.serial_number

    @property
    def organizations(self) -> tuple[str, ...]:
        return tuple(
            str(a.value)
            for a in self.leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        )

    def needs_renewal(self, ratio: float, now: datetime | None = None) -> bool:
        """True when less than ``ratio`` of the lifetime is left (Caddy: 1/3)."""
        now = now or datetime.now(UTC)
        lifetime = (self.not_after - self.not_before).total_seconds()
        remaining = (self.not_after - now).total_seconds()
        return remaining < lifetime * ratio

    def matches_selection(self, selection: CertificateSelection) -> bool:
        if selection.empty:
            return True
        if selection.serial_number and self.serial_number not in selection.serial_number:
            return False
        if selection.subject_organization and not (
            set(selection.subject_organization) & set(self.organizations)
        ):
            return False
        if selection.any_tag and not set(selection.any_tag) & set(self.tags):
            return False
        return not (selection.all_tags and not set(selection.all_tags) <= set(self.tags))

    @classmethod
    def from_pem(
        cls,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        tags: Iterable[str] = (),
        cert_path: str | None = None,
        key_path: str | None = None,
        managed: bool = False,
        signature: tuple[Any, ...] = (),
    ) -> Certificate:
        try:
            certificates = x509.load_pem_x509_certificates(chain_pem)
        except ValueError as error:
            raise CertificateError(f"no usable certificate in PEM data: {error}") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as error:
            raise CertificateError(f"unusable private key: {error}") from None
        leaf_key = (
            certificates[0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        own_key = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if leaf_key != own_key:
            raise CertificateError("the private key does not match the certificate")
        return cls(
            chain_pem,
            key_pem,
            certificates,
            key,
            certificate_names(certificates[0]),
            tuple(tags),
            cert_path,
            key_path,
            managed,
            signature,
        )

    @classmethod
    def from_files(cls, cert_path: str, key_path: str, **kwargs: Any) -> Certificate:
        try:
            signature = (_file_signature(cert_path), _file_signature(key_path))
            with open(cert_path, "rb") as f:
                chain = f.read()
            with open(key_path, "rb") as f:
                key = f.read()
        except OSError as error:
            raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from None
        return cls.from_pem(
            chain, key, cert_path=cert_path, key_path=key_path, signature=signature, **kwargs
        )


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names and IP addresses a certificate is for (SANs, else the CN), lowercased."""
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [name.lower() for name in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    if not names:
        names += [
            str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return tuple(dict.fromkeys(names))


def normalize_name(name: str | bytes | None) -> str:
    if name is None:
        return ""
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    text = text.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return text


def wildcard_of(name: str) -> str | None:
    """``a.example.com`` -> ``*.example.com`` (one label, as TLS wildcards match)."""
    _, dot, rest = name.partition(".")
    return f"*.{rest}" if dot and rest else None


class CertificateSelector:
    """Every certificate this process serves, indexed by name.

    ``clock`` is a monotonic time source (for the on-disk recheck throttle).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._certificates: list[Certificate] = []
        self._by_name: dict[str, list[Certificate]] = {}
        self._checked: dict[int, float] = {}
        self._clock = clock
        self.on_change: list[Callable[[Certificate], None]] = []
        # ``get_certificate`` answers, fetched for the handshake about to run.
        self._external: dict[str, Certificate] = {}

    # -- contents --------------------------------------------------------------------

    def add(self, certificate: Certificate) -> None:
        self._certificates.append(certificate)
        self._index()

    def put(self, name: str, certificate: Certificate) -> None:
        """Install a managed certificate for ``name``, replacing the previous one."""
        self._certificates = [c for c in self._certificates if not (c.managed and name in c.names)]
        certificate.managed = True
        self._certificates.append(certificate)
        self._index()
        for callback in self.on_change:
            callback(certificate)

    def set_external(self, name: str, certificate: Certificate | None) -> None:
        """What a certificate manager answered for ``name`` (None: nothing)."""
        if certificate is None:
            self._external.pop(name, None)
        else:
            self._external[name] = certificate

    def managed(self, name: str) -> Certificate | None:
        for certificate in self._certificates:
            if certificate.managed and name in certificate.names:
                return certificate
        return None

    def has_name(self, name: str) -> bool:
        return self._lookup(normalize_name(name)) is not None

    @property
    def certificates(self) -> list[Certificate]:
        return list(self._certificates)

    def _index(self) -> None:
        for certificate in self._certificates:
            for name in certificate.names:
                metrics.set_certificate_expiry(name, certificate.not_after.timestamp())
        by_name: dict[str, list[Certificate]] = {}
        # Managed certificates first: they are the ones automation keeps fresh.
        ordered = sorted(self._certificates, key=lambda c: not c.managed)
        for certificate in ordered:
            for name in certificate.names:
                by_name.setdefault(name, []).append(certificate)
        self._by_name = by_name

    # -- choosing --------------------------------------------------------------------

    def select(
        self,
        server_name: str | bytes | None,
        selection: CertificateSelection | None = None,
    ) -> Certificate | None:
        """The certificate to present for ``server_name`` (None: nothing fits).

        This is the function HTTP/3 uses too: the result's ``certificates`` and
        ``private_key`` (or ``cert_path``/``key_path``) are what a QUIC configuration
        needs. A certificate replaced on disk is reloaded here before it is returned.
        """
        name = normalize_name(server_name)
        external = self._external.get(name)
        if external is not None and external.matches_selection(selection or CertificateSelection()):
            return external
        found = self._lookup(name, selection or CertificateSelection())
        if found is not None and found.cert_path and not found.managed:
            found = self._refresh(found)
        return found

    def _lookup(
        self, name: str, selection: CertificateSelection | None = None
    ) -> Certificate | None:
        selection = selection or CertificateSelection()
        candidates: list[Certificate] = []
        if name:
            candidates = self._by_name.get(name, [])
            wildcard = wildcard_of(name)
            if not self._fits(candidates, selection) and wildcard:
                candidates = self._by_name.get(wildcard, [])
        else:
            candidates = self._certificates
        for certificate in candidates:
            if certificate.matches_selection(selection):
                return certificate
        return None

    @staticmethod
    def _fits(candidates: list[Certificate], selection: CertificateSelection) -> bool:
        return any(c.matches_selection(selection) for c in candidates)

    def _refresh(self, certificate: Certificate) -> Certificate:
        """Reload a file-backed certificate whose files changed (throttled)."""
        now = self._clock()
        last = self._checked.get(id(certificate))
        if last is not None and now - last < RECHECK_SECONDS:
            return certificate
        self._checked[id(certificate)] = now
        assert certificate.cert_path is not None and certificate.key_path is not None
        try:
            signature = (
                _file_signature(certificate.cert_path),
                _file_signature(certificate.key_path),
            )
        except OSError:
            return certificate
        if signature == certificate.signature:
            return certificate
        try:
            fresh = Certificate.from_files(
                certificate.cert_path, certificate.key_path, tags=certificate.tags
            )
        except CertificateError:
            # Half-written or mismatched (key and cert not both replaced yet): keep the
            # old one and look again at the next handshake after the throttle.
            return certificate
        self._certificates = [fresh if c is certificate else c for c in self._certificates]
        self._checked.pop(id(certificate), None)
        self._checked[id(fresh)] = now
        self._index()
        for callback in self.on_change:
            callback(fresh)
        return fresh
