"""Private keys and small X.509 helpers shared by the issuers."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def new_private_key(key_type: str = "p256") -> Any:
    """A fresh key of a Caddy ``key_type`` (``p256`` by default, as Caddy)."""
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
