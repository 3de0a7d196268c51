"""ACME v2 (RFC 8555) issuance with certbot's ``acme`` library, run in a thread.

``acme`` is synchronous (``requests``), so :meth:`AcmeIssuer.issue` blocks and must run
in a worker thread; it makes its own ``ClientNetwork`` each time (one per thread, never
shared). Challenge answers are published into the reactor through a
:class:`ChallengePublisher` (``blockingCallFromThread``), where the HTTP-01 gate and
the TLS listeners read them.

acme 5 no longer ships TLS-ALPN-01 types, so they are declared here (RFC 8737): the
validation certificate names the domain and carries the critical ``acmeIdentifier``
extension holding the SHA-256 of the key authorization.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from collections.abc import Callable
from typing import Any

import josepy as jose
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier
from OpenSSL import crypto

from caddytw.tls.config import ExternalAccount, IssuerConfig, default_storage_root
from caddytw.tls.dns01 import DNSError, RFC2136Solver
from caddytw.tls.keys import key_from_pem, key_to_pem, make_csr, new_private_key
from caddytw.tls.store import Storage, safe_key, write_file

ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
USER_AGENT = "caddytw"
FINALIZE_TIMEOUT = 90.0
ZEROSSL_API = "https://api.zerossl.com"


class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) response a client posts to say its TLS-ALPN-01 answer is ready."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737 challenge; :meth:`validation` is the SHA-256 of the key authorization."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.JWK, **kwargs: Any) -> bytes:
        return hashlib.sha256(self.key_authorization(account_key).encode("ascii")).digest()


challenges.ChallengeResponse.register(TLSALPN01Response)


def tls_alpn_certificate(name: str, digest: bytes) -> tuple[crypto.X509, crypto.PKey]:
    """The self-signed validation certificate for ``name`` (pyOpenSSL objects)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        san = x509.DNSName(name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return crypto.X509.from_cryptography(cert), crypto.PKey.from_cryptography_key(key)


class ChallengePublisher:
    """How a worker thread makes challenge answers visible (and withdraws them).

    Each callable runs in the reactor thread and returns once the answer is live.
    """

    def __init__(
        self,
        add_http01: Callable[[str, str], None],
        remove_http01: Callable[[str], None],
        add_tls_alpn01: Callable[[str, Any, Any], None],
        remove_tls_alpn01: Callable[[str], None],
    ) -> None:
        self.add_http01 = add_http01
        self.remove_http01 = remove_http01
        self.add_tls_alpn01 = add_tls_alpn01
        self.remove_tls_alpn01 = remove_tls_alpn01


class AcmeError(Exception):
    """Issuance failed; the message says at which step and why."""


class AcmeIssuer:
    """Obtains certificates from one ACME CA (``issue`` blocks: call it in a thread)."""

    def __init__(self, config: IssuerConfig, storage: Storage, publisher: ChallengePublisher):
        self.config = config
        self.storage = storage
        self.publisher = publisher
        self.name = config.storage_name

    # -- account and connection ------------------------------------------------------

    def _account_key(self) -> jose.JWKEC:
        key = self.storage.account_key_key(self.name, self.config.email)
        with self.storage.lock(f"acme_account_{self.name}"):
            pem = self.storage.load(key)
            if pem is None:
                pem = key_to_pem(new_private_key("p256"))
                self.storage.store(key, pem, private=True)
        return jose.JWKEC(key=key_from_pem(pem))

    def _verify(self) -> Any:
        """``requests``' ``verify``: True, or a CA bundle path (acme types it as bool)."""
        files = self.config.trusted_roots_pem_files
        if not files:
            return True
        if len(files) == 1:
            return files[0]
        # requests wants one file: beside a file system storage, else in this node's
        # own data folder (never a shared temp folder: another user could plant roots).
        data = b"".join(open(path, "rb").read() for path in files)  # noqa: SIM115
        key = f"acme/{safe_key(self.name)}/trusted_roots.pem"
        bundle = self.storage.local_path(key) or os.path.join(
            default_storage_root(), *key.split("/")
        )
        write_file(bundle, data)
        return bundle

    def _client(self, key: jose.JWKEC) -> client.ClientV2:
        net = client.ClientNetwork(
            key, alg=jose.ES256, verify_ssl=self._verify(), user_agent=USER_AGENT
        )
        directory = client.ClientV2.get_directory(self.config.directory, net)
        acme = client.ClientV2(directory, net)
        fields: dict[str, Any] = {"terms_of_service_agreed": True}
        if self.config.email:
            fields["email"] = self.config.email
        account = self._external_account()
        if account is not None:
            fields["external_account_binding"] = messages.ExternalAccountBinding.from_data(
                key.public_key(), account.key_id, account.mac_key, directory
            )
        registration = messages.NewRegistration.from_data(**fields)
        try:
            net.account = acme.new_account(registration)
        except errors.ConflictError as existing:
            # The key already has an account: use it.
            net.account = messages.RegistrationResource(
                uri=existing.location, body=messages.Registration()
            )
        return acme

    def _external_account(self) -> ExternalAccount | None:
        """The configured EAB; for ``zerossl`` without one, ZeroSSL's API hands one out
        for the ``api_key`` (or the email), as Caddy's ZeroSSL issuer does."""
        if self.config.external_account is not None or self.config.module != "zerossl":
            return self.config.external_account
        return zerossl_eab(self.config.api_key, self.config.email)

    # -- issuance --------------------------------------------------------------------

    def issue(self, name: str, key_pem: bytes) -> bytes:
        """Run one order for ``name``; return the full chain PEM."""
        try:
            account_key = self._account_key()
            acme = self._client(account_key)
            order = acme.new_order(make_csr(key_pem, name))
            cleanups: list[Callable[[], None]] = []
            try:
                for authorization in order.authorizations:
                    if authorization.body.status == messages.STATUS_VALID:
                        continue  # reused by the CA: nothing to prove
                    self._answer(acme, account_key, authorization, cleanups)
                deadline = datetime.datetime.now() + datetime.timedelta(seconds=FINALIZE_TIMEOUT)
                finished = acme.poll_and_finalize(order, deadline)
            finally:
                for cleanup in cleanups:
                    cleanup()
        except (
            errors.Error,
            messages.Error,
            jose.DeserializationError,
            OSError,
            DNSError,
        ) as error:
            raise AcmeError(
                f"ACME order for {name} at {self.config.directory} failed: {error}"
            ) from error
        chain: str = finished.fullchain_pem
        return chain.encode("ascii")

    def _answer(
        self,
        acme: client.ClientV2,
        account_key: jose.JWKEC,
        authorization: messages.AuthorizationResource,
        cleanups: list[Callable[[], None]],
    ) -> None:
        identifier = authorization.body.identifier.value
        by_type = {c.chall.typ: c for c in authorization.body.challenges}
        http, alpn, dns = self.config.http, self.config.tls_alpn, self.config.dns
        chall: Any
        if dns is not None and dns.provider is not None:
            # As certmagic: a configured DNS provider is the only challenge used.
            if "dns-01" not in by_type:
                raise AcmeError(f"the CA offers no dns-01 challenge for {identifier}")
            chosen = by_type["dns-01"]
            chall = chosen.chall
            response, value = chall.response_and_validation(account_key)
            solver = RFC2136Solver(dns.provider, dns)
            cleanups.append(lambda: _quietly(solver.cleanup, identifier, value))
            solver.present(identifier, value)
        elif "http-01" in by_type and not http.disabled:
            chosen = by_type["http-01"]
            chall = chosen.chall
            response, validation = chall.response_and_validation(account_key)
            token = chall.encode("token")
            self.publisher.add_http01(token, validation)
            cleanups.append(lambda: self.publisher.remove_http01(token))
        elif "tls-alpn-01" in by_type and not alpn.disabled:
            chosen = by_type["tls-alpn-01"]
            chall = chosen.chall
            response, digest = chall.response_and_validation(account_key)
            certificate, key = tls_alpn_certificate(identifier, digest)
            self.publisher.add_tls_alpn01(identifier, certificate, key)
            cleanups.append(lambda: self.publisher.remove_tls_alpn01(identifier))
        else:
            offered = ", ".join(sorted(by_type))
            raise AcmeError(f"no enabled challenge for {identifier} (CA offers: {offered})")
        acme.answer_challenge(chosen, response)


def _quietly(cleanup: Callable[..., None], *args: Any) -> None:
    """A failed cleanup leaves a stale record behind; it must not fail the order."""
    try:
        cleanup(*args)
    except Exception as error:
        from twisted.logger import Logger

        Logger().warn("cleaning up a challenge failed: {error}", error=error)


def zerossl_eab(api_key: str, email: str, api: str = ZEROSSL_API) -> ExternalAccount:
    """EAB credentials from ZeroSSL's API (blocking): by access key, else by email."""
    import requests

    form: dict[str, str] = {}
    if api_key:
        url = f"{api}/acme/eab-credentials?access_key={api_key}"
    elif email:
        url, form = f"{api}/acme/eab-credentials-email", {"email": email}
    else:
        raise AcmeError("the zerossl issuer needs an api_key, an email or external_account")
    try:
        response = requests.post(url, data=form, timeout=30, headers={"User-Agent": USER_AGENT})
        answer = response.json()
    except (requests.RequestException, ValueError) as error:
        raise AcmeError(f"getting EAB credentials from ZeroSSL: {error}") from error
    if not isinstance(answer, dict) or not answer.get("success"):
        reason = answer.get("error") if isinstance(answer, dict) else answer
        raise AcmeError(f"ZeroSSL refused EAB credentials: {reason}")
    return ExternalAccount(str(answer["eab_kid"]), str(answer["eab_hmac_key"]))
