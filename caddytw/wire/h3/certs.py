"""Which QUIC configuration (certificate) answers a given server name.

The TLS listener picks certificates by SNI; QUIC must present the same ones. A
``certificate_provider(server_name) -> (chain, key)`` callable is the bridge: the TLS
side owns the certificates (and their ACME renewals), this side only asks. A
``QuicConfiguration`` is built once per distinct certificate and reused; a renewed
certificate has a new fingerprint and so gets a fresh configuration on its next use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.hazmat.primitives import hashes

# (leaf first, then intermediates), private key of the leaf.
CertificateAndKey = tuple[Sequence[x509.Certificate], Any]
CertificateProvider = Callable[[str | None], CertificateAndKey | None]

CONNECTION_ID_LENGTH = 8  # the same for every configuration: routing depends on it
_CACHE_SIZE = 64


class QuicConfigurations:
    """Server-side ``QuicConfiguration`` objects, one per certificate in use."""

    def __init__(
        self,
        provider: CertificateProvider,
        *,
        idle_timeout: float,
        max_datagram_size: int | None = None,
    ) -> None:
        self.provider = provider
        self.idle_timeout = idle_timeout
        self.max_datagram_size = max_datagram_size
        self._cache: OrderedDict[bytes, QuicConfiguration] = OrderedDict()

    def for_server_name(self, server_name: str | None) -> QuicConfiguration | None:
        """The configuration whose certificate answers ``server_name`` (None: no cert)."""
        found = self.provider(server_name)
        if found is None:
            return None
        chain, key = found
        if not chain:
            return None
        fingerprint = chain[0].fingerprint(hashes.SHA256())
        configuration = self._cache.get(fingerprint)
        if configuration is None:
            configuration = self._build(chain, key)
            self._cache[fingerprint] = configuration
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(fingerprint)
        return configuration

    def _build(self, chain: Sequence[x509.Certificate], key: Any) -> QuicConfiguration:
        configuration = QuicConfiguration(
            is_client=False,
            alpn_protocols=list(H3_ALPN),
            idle_timeout=self.idle_timeout,
            connection_id_length=CONNECTION_ID_LENGTH,
        )
        if self.max_datagram_size is not None:
            configuration.max_datagram_size = self.max_datagram_size
        configuration.certificate = chain[0]
        configuration.certificate_chain = list(chain[1:])
        configuration.private_key = key
        return configuration


def static_provider(chain: Sequence[x509.Certificate], key: Any) -> CertificateProvider:
    """A provider answering every name with one certificate (tests, single-cert sites)."""

    def provide(server_name: str | None) -> CertificateAndKey:
        return chain, key

    return provide


def load_pem_provider(cert_path: str, key_path: str) -> CertificateProvider:
    """A static provider from PEM files (a full chain and its key)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    with open(cert_path, "rb") as handle:
        chain = x509.load_pem_x509_certificates(handle.read())
    with open(key_path, "rb") as handle:
        key = load_pem_private_key(handle.read(), password=None)
    return static_provider(chain, key)
