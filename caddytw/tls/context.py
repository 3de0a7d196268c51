"""pyOpenSSL contexts for TLS listeners, chosen per connection by SNI.

Each listener has a *base* context that only runs the SNI callback: it picks the first
connection policy matching the name, asks the :class:`CertificateSelector` for a
certificate, and swaps in a context made for that (policy, certificate) pair. Contexts
are cached on the certificate, so a renewed or reloaded certificate (a new object)
gets fresh contexts and open connections keep the old one.

Defaults follow Caddy: TLS 1.2 floor, ECDHE with AEAD ciphers only (TLS 1.3 suites are
all AEAD), no compression, no renegotiation, server cipher preference; session tickets
and a session cache for resumption. ALPN picks the server's preferred protocol among
those the client offers; ``acme-tls/1`` is answered with the pending TLS-ALPN-01
challenge certificate for the name.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from caddytw.tls.certs import Certificate, CertificateSelector, normalize_name
from caddytw.tls.challenges import ChallengeRegistry
from caddytw.tls.config import CIPHER_SUITES, CURVES, ClientAuthentication, ConnectionPolicy
from caddytw.wire.negotiate import ACME_TLS_ALPN, select_alpn

log = Logger()

_VERIFIERS: weakref.WeakKeyDictionary[SSL.Context, tuple[int, Any]] = weakref.WeakKeyDictionary()

DEFAULT_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
)
_VERSIONS = {
    0x0301: SSL.TLS1_VERSION,
    0x0302: SSL.TLS1_1_VERSION,
    0x0303: SSL.TLS1_2_VERSION,
    0x0304: SSL.TLS1_3_VERSION,
}
_OPTIONS = (
    SSL.OP_NO_COMPRESSION
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    | SSL.OP_NO_RENEGOTIATION
    | SSL.OP_SINGLE_ECDH_USE
    | SSL.OP_SINGLE_DH_USE
)


def make_context(
    policy: ConnectionPolicy,
    alpn: list[bytes],
    certificate: Certificate | None,
    challenges: ChallengeRegistry | None,
    session_id: bytes,
) -> SSL.Context:
    """A server context for one policy, presenting ``certificate`` (when given)."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(_VERSIONS[policy.protocol_min])
    context.set_max_proto_version(_VERSIONS[policy.protocol_max])
    context.set_options(_OPTIONS)
    suites = ":".join(CIPHER_SUITES[s] for s in policy.cipher_suites) or DEFAULT_CIPHERS
    if policy.protocol_min < 0x0303:
        suites += ":@SECLEVEL=0"  # an explicit opt-in to old protocols must work
    context.set_cipher_list(suites.encode("ascii"))
    if policy.curves:
        context.set_tmp_ecdh(crypto.get_elliptic_curve(_curve_name(policy.curves[0])))
    context.set_session_id(session_id)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    context.set_timeout(24 * 3600)
    if certificate is not None:
        context.use_certificate(crypto.X509.from_cryptography(certificate.leaf))
        for extra in certificate.certificates[1:]:
            context.add_extra_chain_cert(crypto.X509.from_cryptography(extra))
        context.use_privatekey(crypto.PKey.from_cryptography_key(certificate.private_key))
        context.check_privatekey()
    context.set_alpn_select_callback(_AlpnSelector(alpn, challenges))
    if policy.client_authentication is not None:
        _require_client_certificates(context, policy.client_authentication)
    return context


def _require_client_certificates(context: SSL.Context, auth: ClientAuthentication) -> None:
    """Go's ``tls.ClientAuthType`` on OpenSSL: ask for a certificate always; fail a
    handshake without one for ``require*``; check the chain against the trusted CAs
    (and the leaf against ``trusted_leaf_certs``) only for the verifying modes."""
    flags = SSL.VERIFY_PEER
    if auth.requires:
        flags |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    store = context.get_cert_store()
    for der in auth.trusted_ca_certs:
        certificate = crypto.load_certificate(crypto.FILETYPE_ASN1, der)
        if store is not None:
            store.add_cert(certificate)
        context.add_client_ca(certificate)
    verifier = _ClientVerifier(auth)
    context.set_verify(flags, verifier)
    _VERIFIERS[context] = (flags, verifier)
    # A session resumed from another policy's context must not skip the check.
    context.set_session_id(b"caddytw-mtls-" + hashlib.sha256(repr(auth).encode()).digest()[:16])


def apply_client_verification(connection: SSL.Connection, context: SSL.Context) -> None:
    """``SSL_set_SSL_CTX`` (the SNI callback's context swap) keeps the verify mode of
    the context the connection started with: copy the chosen context's onto it."""
    found = _VERIFIERS.get(context)
    if found is not None:
        connection.set_verify(*found)
    else:  # the base context may have asked for client certificates for policy 0
        connection.set_verify(SSL.VERIFY_NONE)


class _ClientVerifier:
    """OpenSSL's per-certificate verify callback for one ``client_authentication``."""

    def __init__(self, auth: ClientAuthentication) -> None:
        self.auth = auth
        self.leaves = set(auth.trusted_leaf_certs)

    def __call__(
        self, connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
    ) -> bool:
        if not self.auth.verifies:
            return True
        chain_ok = bool(ok) or not self.auth.trusted_ca_certs
        if depth == 0 and self.leaves:
            der = crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate)
            return chain_ok and der in self.leaves
        return chain_ok


def _curve_name(curve: str) -> str:
    return {"P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1"}.get(
        CURVES[curve], CURVES[curve]
    )


class _AlpnSelector:
    """Server-preference ALPN, plus ``acme-tls/1`` for pending TLS-ALPN-01 names."""

    def __init__(self, offered: list[bytes], challenges: ChallengeRegistry | None) -> None:
        self.offered = offered
        self.challenges = challenges

    def __call__(self, connection: SSL.Connection, client: list[bytes]) -> Any:
        pending = None
        if ACME_TLS_ALPN in client and self.challenges is not None:
            name = normalize_name(connection.get_servername())
            pending = self.challenges.tls_alpn01_answer(name)
        chosen = select_alpn(self.offered, client, pending is not None)
        if chosen is None:
            return SSL.NO_OVERLAPPING_PROTOCOLS
        if chosen == ACME_TLS_ALPN and pending is not None:
            certificate, key = pending
            connection.use_certificate(certificate)
            connection.use_privatekey(key)
        return chosen


@implementer(IOpenSSLServerConnectionCreator)
class SNIConnectionCreator:
    """Makes the ``SSL.Connection`` for each accepted TCP connection of one server.

    ``policies`` are the server's ``tls_connection_policies`` in order (at least one).
    """

    def __init__(
        self,
        policies: Sequence[ConnectionPolicy],
        alpn: list[bytes],
        selector: CertificateSelector,
        challenges: ChallengeRegistry | None = None,
        name: str = "",
    ) -> None:
        self.policies = list(policies) or [ConnectionPolicy()]
        self.alpn = alpn
        self.selector = selector
        self.challenges = challenges
        self._session_id = ("caddytw-" + name).encode("utf-8")[:32]
        self._bare: dict[int, SSL.Context] = {}
        # The versions a connection may negotiate are fixed by the context it starts
        # with (the SNI callback comes after version selection): the base context allows
        # the union of the policies, and a policy's own range is enforced in the
        # callback by giving an out-of-range handshake no certificate.
        widest = replace(
            self.policies[0],
            protocol_min=min(p.protocol_min for p in self.policies),
            protocol_max=max(p.protocol_max for p in self.policies),
        )
        self._base = make_context(widest, self.alpn, None, self.challenges, self._session_id)
        self._base.set_tlsext_servername_callback(self._on_server_name)

    def serverConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._base, None)
        connection.set_accept_state()
        return connection

    def _bare_context(self, index: int) -> SSL.Context:
        context = self._bare.get(index)
        if context is None:
            context = make_context(
                self.policies[index], self.alpn, None, self.challenges, self._session_id
            )
            self._bare[index] = context
        return context

    def context_for(self, server_name: str | bytes | None, version: int = 0) -> SSL.Context:
        """The context a ClientHello naming ``server_name`` gets (no certificate: bare).

        ``version`` is the TLS version already negotiated (0: not known).
        """
        name = normalize_name(server_name)
        index, policy = self._policy(name)
        if policy is None:
            return self._bare_context(0)
        if version and not policy.protocol_min <= version <= policy.protocol_max:
            return self._bare_context(index)
        if not name and policy.default_sni:
            name = normalize_name(policy.default_sni)
        certificate = self.selector.select(name, policy.certificate_selection)
        if certificate is None:
            return self._bare_context(index)
        context = certificate.contexts.get((id(self), index))
        if context is None:
            context = make_context(
                policy, self.alpn, certificate, self.challenges, self._session_id
            )
            certificate.contexts[(id(self), index)] = context
        return context

    def _policy(self, name: str) -> tuple[int, ConnectionPolicy | None]:
        for index, policy in enumerate(self.policies):
            if policy.matches(name):
                return index, policy
        # Caddy refuses the handshake when no policy matches; a bare context has no
        # certificate, so the handshake fails the same way.
        return -1, None

    def _on_server_name(self, connection: SSL.Connection) -> None:
        try:
            version = connection.get_protocol_version()
            context = self.context_for(connection.get_servername(), version)
            connection.set_context(context)
            apply_client_verification(connection, context)
        except Exception:  # never let a bad certificate take the reactor down
            log.failure("choosing a TLS certificate failed")
