"""``{http.request.tls.*}`` placeholders: the TLS connection a request came over.

Read from the pyOpenSSL connection under the request (found by walking ``transport``
links, so HTTP/1.1 and HTTP/2 over TLS both work); a plain-HTTP request gives "" for
every key. Client certificate fields are there once ``client_authentication`` asked for
one; without a client certificate they are "" (current Caddy, since its issue 7530;
2.6.2 left the placeholders unreplaced).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from caddytw.tls.config import CIPHER_SUITES

_GO_CIPHER_NAMES = {openssl: go for go, openssl in CIPHER_SUITES.items()}
_VERSIONS = {"TLSv1": "tls1.0", "TLSv1.1": "tls1.1", "TLSv1.2": "tls1.2", "TLSv1.3": "tls1.3"}


def tls_connection(request: Any) -> Any:
    """The ``OpenSSL.SSL.Connection`` under ``request``, or None.

    An HTTP/2 stream is its own ``transport``; its connection is ``_conn``.
    """
    node = getattr(request, "channel", None)
    for _ in range(6):
        node = getattr(node, "_conn", None) or getattr(node, "transport", None)
        if node is None:
            return None
        if hasattr(node, "getPeerCertificate") and hasattr(node, "getHandle"):
            return node.getHandle()
    return None


def tls_placeholder(request: Any, key: str) -> str:
    """The value of ``http.request.tls.<key>`` ("" when not known)."""
    connection = tls_connection(request)
    if connection is None:
        return ""
    if key == "version":
        return _VERSIONS.get(connection.get_protocol_version_name(), "")
    if key == "cipher_suite":
        name = str(connection.get_cipher_name() or "")
        return _GO_CIPHER_NAMES.get(name, name)  # TLS 1.3 names are the same in both
    if key == "resumed":
        return "true" if connection.session_reused() else "false"
    if key == "proto":
        return (connection.get_alpn_proto_negotiated() or b"").decode("ascii", "replace")
    if key == "server_name":
        return (connection.get_servername() or b"").decode("ascii", "replace")
    if key.startswith("client."):
        peer = connection.get_peer_certificate()
        return "" if peer is None else _client_field(peer.to_cryptography(), key[7:])
    return ""


# Go's ``pkix.Name.ToRDNSequence`` order (``String`` prints it reversed).
_GO_NAME_ORDER = [
    NameOID.COUNTRY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STREET_ADDRESS,
    NameOID.POSTAL_CODE,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COMMON_NAME,
    NameOID.SERIAL_NUMBER,
]


def go_name_string(name: x509.Name) -> str:
    """A distinguished name as Go's ``pkix.Name.String`` writes it (so as Caddy's
    placeholders show it): the well-known attributes in Go's order, last first."""
    known = [a for oid in _GO_NAME_ORDER for a in name if a.oid == oid]
    others = [a for a in name if a.oid not in _GO_NAME_ORDER]
    parts = [x509.Name([a]).rfc4514_string() for a in [*known, *others]]
    return ",".join(reversed(parts))


def _client_field(cert: x509.Certificate, field: str) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    if field == "fingerprint":
        return hashlib.sha256(der).hexdigest()
    if field == "subject":
        return go_name_string(cert.subject)
    if field == "issuer":
        return go_name_string(cert.issuer)
    if field == "serial":
        return str(cert.serial_number)
    if field == "certificate_pem":
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    if field == "certificate_der_base64":
        return base64.b64encode(der).decode("ascii")
    if field in ("public_key", "public_key_sha256"):
        raw = _public_key_bytes(cert.public_key())
        return raw.hex() if field == "public_key" else hashlib.sha256(raw).hexdigest()
    if field.startswith("san."):
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return ""
        kinds: dict[str, Any] = {
            "dns_names": x509.DNSName,
            "emails": x509.RFC822Name,
            "ips": x509.IPAddress,
            "uris": x509.UniformResourceIdentifier,
        }
        kind, _, index = field[4:].partition(".")
        if kind not in kinds:
            return ""
        values = [str(v) for v in san.get_values_for_type(kinds[kind])]
        if index.isdigit():
            return values[int(index)] if int(index) < len(values) else ""
        return "[" + " ".join(values) + "]"  # how Go prints a list
    return ""


def _public_key_bytes(key: Any) -> bytes:
    """Caddy's ``marshalPublicKey``: PKCS#1 for RSA, the uncompressed point for ECDSA,
    the raw 32 bytes for Ed25519."""
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
