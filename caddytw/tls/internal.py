"""Caddy's ``internal`` issuer: a local CA that certifies ``localhost``, IPs and the like.

The root (10 years) is created once in ``pki/authorities/<ca>/root.crt|root.key`` and
reused; leaves are short-lived (12 h by default, as Caddy) and renewed by automation.
Clients trust the root by adding ``root.crt`` to their trust store. Blocking: runs in
a thread like the ACME issuer.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from caddytw.tls.config import IssuerConfig
from caddytw.tls.keys import key_from_pem, key_to_pem, new_private_key
from caddytw.tls.store import Storage

ROOT_LIFETIME = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(minutes=5)


class InternalIssuer:
    """Issues leaf certificates signed by the storage's local root."""

    def __init__(self, config: IssuerConfig, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        self.name = config.storage_name

    @property
    def root_keys(self) -> tuple[str, str]:
        return self.storage.authority_keys(self.config.ca or "local")

    def root(self) -> tuple[x509.Certificate, Any]:
        """The CA's root certificate and key, created on first use (under a lock)."""
        cert_key, key_key = self.root_keys
        with self.storage.lock(f"pki_{self.config.ca}"):
            cert_pem, key_pem = self.storage.load(cert_key), self.storage.load(key_key)
            if cert_pem and key_pem:
                return x509.load_pem_x509_certificate(cert_pem), key_from_pem(key_pem)
            key = new_private_key("p256")
            now = datetime.datetime.now(datetime.UTC)
            subject = x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, "caddytw Local Authority - Root")]
            )
            cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE)
                .not_valid_after(now + ROOT_LIFETIME)
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                .add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
                .sign(key, hashes.SHA256())
            )
            self.storage.store(key_key, key_to_pem(key), private=True)
            self.storage.store(cert_key, cert.public_bytes(serialization.Encoding.PEM))
            return cert, key

    def issue(self, name: str, key_pem: bytes) -> bytes:
        """A PEM chain (leaf, root) for ``name`` with the given leaf key."""
        root, root_key = self.root()
        key = key_from_pem(key_pem)
        now = datetime.datetime.now(datetime.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        lifetime = datetime.timedelta(seconds=self.config.lifetime)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + lifetime, root.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
            )
            .sign(root_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM) + root.public_bytes(
            serialization.Encoding.PEM
        )
