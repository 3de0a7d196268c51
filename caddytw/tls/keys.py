"""Private keys and small X.509 helpers shared by the issuers."""

from __future__ import annotations

import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def new_private_key(key_type: str = "p256") -> Any:
    """A fresh key of a Caddy ``key_type`` (``p256`` by default, as Caddy)."""
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in ("rsa2048", "rsa4096"):
        return rsa.generate_private_key(65537, int(key_type[3:]))
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: Any) -> bytes:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


def key_from_pem(data: bytes) -> Any:
    return serialization.load_pem_private_key(data, password=None)


def make_csr(key_pem: bytes, name: str) -> bytes:
    """A PEM CSR for one DNS name or IP address.

    Written here rather than taken from ``acme.crypto_util`` because that one always
    signs with SHA-256, which Ed25519 keys refuse (they hash internally).
    """
    key = key_from_pem(key_pem)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        san = x509.DNSName(name)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM)
