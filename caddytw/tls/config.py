"""``apps.tls``, ``storage`` and server ``tls_connection_policies`` as frozen objects.

The core carries these keys raw (see :mod:`caddytw.config.model`); this module checks
them as strictly as Caddy does (unknown fields are errors naming their JSON path) so a
config that caddytw accepts means the same thing it would mean to Caddy.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ZEROSSL = "https://acme.zerossl.com/v2/DV90"
KEY_TYPES = ("ed25519", "p256", "p384", "rsa2048", "rsa4096")
CLIENT_AUTH_MODES = ("request", "require", "verify_if_given", "require_and_verify")
TSIG_ALGORITHMS = (
    "hmac-md5",
    "hmac-sha1",
    "hmac-sha224",
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
)
DEFAULT_PROPAGATION_TIMEOUT = 120.0
DEFAULT_RENEWAL_RATIO = 1 / 3
DEFAULT_RENEW_INTERVAL = 600.0
DEFAULT_INTERNAL_LIFETIME = 12 * 3600.0

# Caddy's names for protocol versions -> the numeric TLS version.
PROTOCOLS = {"tls1.0": 0x0301, "tls1.1": 0x0302, "tls1.2": 0x0303, "tls1.3": 0x0304}

# Go's cipher suite names (what Caddy accepts) -> OpenSSL names. TLS 1.3 suites are not
# configurable in Go either; only these TLS 1.2 suites are.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}

# Caddy's curve names -> OpenSSL group names.
CURVES = {
    "x25519": "X25519",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


@dataclass(frozen=True)
class LoadedFile:
    """One ``certificates.load_files`` entry."""

    certificate: str
    key: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChallengeConfig:
    disabled: bool = False
    alternate_port: int = 0


@dataclass(frozen=True)
class RFC2136Provider:
    """The ``rfc2136`` DNS provider: dynamic updates (RFC 2136) signed with TSIG."""

    server: str
    key_name: str
    key: str
    key_alg: str = "hmac-sha256"


@dataclass(frozen=True)
class DNSChallengeConfig:
    """``challenges.dns``; without a provider (Caddy 2.6) it solves nothing."""

    provider: RFC2136Provider | None = None
    ttl: float = 0.0
    propagation_delay: float = 0.0
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT  # < 0: do not check
    resolvers: tuple[str, ...] = ()
    override_domain: str = ""


@dataclass(frozen=True)
class ExternalAccount:
    """ACME external account binding (RFC 8555 section 7.3.4)."""

    key_id: str
    mac_key: str  # base64url, as the CA hands it out


@dataclass(frozen=True)
class IssuerConfig:
    """An ``acme``, ``zerossl`` (ACME with EAB from ZeroSSL) or ``internal`` issuer."""

    module: str
    ca: str = ""
    email: str = ""
    trusted_roots_pem_files: tuple[str, ...] = ()
    http: ChallengeConfig = ChallengeConfig()
    tls_alpn: ChallengeConfig = ChallengeConfig()
    lifetime: float = DEFAULT_INTERNAL_LIFETIME
    external_account: ExternalAccount | None = None
    api_key: str = ""
    dns: DNSChallengeConfig | None = None

    @property
    def directory(self) -> str:
        if self.ca:
            return self.ca
        return ZEROSSL if self.module == "zerossl" else LETS_ENCRYPT

    @property
    def storage_name(self) -> str:
        """The issuer's folder under ``certificates/`` (Caddy: the CA host + path)."""
        if self.module == "internal":
            return self.ca or "local"
        from urllib.parse import urlsplit

        parts = urlsplit(self.directory)
        text = (parts.netloc + parts.path).strip("/")
        return text.replace(":", "-").replace("/", "-").lower()


@dataclass(frozen=True)
class AutomationPolicy:
    subjects: tuple[str, ...] = ()
    issuers: tuple[IssuerConfig, ...] = ()
    on_demand: bool = False
    renewal_window_ratio: float = DEFAULT_RENEWAL_RATIO
    key_type: str = "p256"
    get_certificate: tuple[str, ...] = ()  # URLs of ``http`` certificate managers

    def covers(self, name: str) -> bool:
        """Whether ``name`` is one of the subjects (``*`` labels match one label)."""
        return any(subject_matches(name, subject) for subject in self.subjects)


def subject_matches(name: str, subject: str) -> bool:
    """certmagic's ``MatchWildcard``: equal, or equal with ``*`` labels matching any."""
    if name == subject:
        return True
    labels, pattern = name.split("."), subject.split(".")
    return len(labels) == len(pattern) and all(
        p == "*" or p == label for label, p in zip(labels, pattern, strict=True)
    )


@dataclass(frozen=True)
class OnDemandConfig:
    """``automation.on_demand``: who may have a certificate at handshake, how often."""

    ask: str = ""  # GET ask?domain=NAME must answer 200
    interval: float = 0.0
    burst: int = 0


@dataclass(frozen=True)
class StorageConfig:
    """The top-level ``storage``: ``file_system`` (``root``) or ``postgres``
    (``connection_string``, the shape of the community certmagic-sqlstorage module)."""

    module: str = "file_system"
    root: str = ""
    connection_string: str = ""


@dataclass(frozen=True)
class TLSAppConfig:
    load_files: tuple[LoadedFile, ...] = ()
    policies: tuple[AutomationPolicy, ...] = ()
    renew_interval: float = DEFAULT_RENEW_INTERVAL
    storage: StorageConfig = field(default_factory=StorageConfig)
    automate: tuple[str, ...] = ()
    on_demand: OnDemandConfig = OnDemandConfig()

    @property
    def storage_root(self) -> str:
        """The ``file_system`` root ("" for other modules)."""
        return self.storage.root


@dataclass(frozen=True)
class CertificateSelection:
    """``certificate_selection``: which loaded certificates a policy may use."""

    serial_number: tuple[int, ...] = ()
    subject_organization: tuple[str, ...] = ()
    any_tag: tuple[str, ...] = ()
    all_tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.serial_number or self.subject_organization or self.any_tag or self.all_tags
        )


@dataclass(frozen=True)
class ClientAuthentication:
    """``client_authentication``: asking TLS clients for certificates (mTLS).

    ``trusted_ca_certs``/``trusted_leaf_certs`` are DER; the PEM files are read when the
    config is parsed, so a bad file is a config error naming its path.
    """

    mode: str
    trusted_ca_certs: tuple[bytes, ...] = ()
    trusted_leaf_certs: tuple[bytes, ...] = ()

    @property
    def verifies(self) -> bool:
        return self.mode in ("verify_if_given", "require_and_verify")

    @property
    def requires(self) -> bool:
        return self.mode in ("require", "require_and_verify")


@dataclass(frozen=True)
class ConnectionPolicy:
    """One ``tls_connection_policies`` entry (an empty one enables TLS with defaults)."""

    sni: tuple[str, ...] = ()
    protocol_min: int = PROTOCOLS["tls1.2"]
    protocol_max: int = PROTOCOLS["tls1.3"]
    alpn: tuple[str, ...] = ()
    default_sni: str = ""
    certificate_selection: CertificateSelection = field(default_factory=CertificateSelection)
    cipher_suites: tuple[str, ...] = ()
    curves: tuple[str, ...] = ()
    client_authentication: ClientAuthentication | None = None

    def matches(self, server_name: str | None) -> bool:
        if not self.sni:
            return True
        name = (server_name or "").lower()
        return any(name == pattern.lower() for pattern in self.sni)


def default_storage_root() -> str:
    """Where certificates live when the config has no ``storage`` (Caddy's data dir)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "caddytw")


STORAGE_MODULES = ("file_system", "postgres")


def parse_storage(data: dict[str, Any], path: str = "storage") -> StorageConfig:
    """The top-level ``storage``: ``file_system`` (the default, in Caddy's data dir) or
    ``postgres`` with a ``connection_string`` checked here (bad ones name their path)."""
    if not data:
        return StorageConfig(root=default_storage_root())
    reader = ObjectReader(data, path)
    module = reader.text("module", "file_system")
    if module == "postgres":
        from caddytw.postgres import check_connection_string

        where = reader.at("connection_string")
        dsn = check_connection_string(reader.data.get("connection_string"), where)
        reader.text("connection_string")
        reader.done()
        return StorageConfig("postgres", connection_string=dsn)
    if module != "file_system":
        raise ConfigError(
            reader.at("module"),
            f"unsupported storage module {module!r} (expected one of {', '.join(STORAGE_MODULES)})",
        )
    root = reader.text("root")
    reader.done()
    return StorageConfig(root=root or default_storage_root())


def parse_tls_app(
    data: dict[str, Any], storage: dict[str, Any], path: str = "apps.tls"
) -> TLSAppConfig:
    reader = ObjectReader(data, path)
    certificates = reader.reader("certificates")
    load_files = tuple(
        _parse_load_file(item, join_path(certificates.at("load_files"), index))
        for index, item in enumerate(certificates.array("load_files"))
    )
    automate = tuple(name.lower() for name in certificates.strings("automate"))
    for key in certificates.data:
        if key not in ("load_files", "automate"):
            raise ConfigError(certificates.at(key), f"unsupported certificate loader {key!r}")
    certificates.done()
    automation = reader.reader("automation")
    policies = tuple(
        _parse_policy(item, join_path(automation.at("policies"), index))
        for index, item in enumerate(automation.array("policies"))
    )
    renew = automation.duration("renew_interval") or DEFAULT_RENEW_INTERVAL
    on_demand = _parse_on_demand(automation.raw("on_demand"), automation.at("on_demand"))
    automation.ignore("ocsp_interval", "storage_clean_interval")
    automation.done()
    reader.ignore("session_tickets", "cache", "disable_ocsp_stapling")
    reader.done()
    return TLSAppConfig(load_files, policies, renew, parse_storage(storage), automate, on_demand)


def _parse_on_demand(data: Any, path: str) -> OnDemandConfig:
    """Caddy 2.6's ``{ask, rate_limit: {interval, burst}}`` (and the newer
    ``permission: {module: "http", endpoint}`` spelling of ``ask``)."""
    if data is None:
        return OnDemandConfig()
    reader = ObjectReader(data, path)
    ask = reader.text("ask")
    permission = reader.reader("permission")
    if permission.data:
        module = permission.text("module")
        if module != "http":
            raise ConfigError(permission.at("module"), f"unsupported permission module {module!r}")
        ask = ask or permission.text("endpoint")
    permission.done()
    if ask and not ask.startswith(("http://", "https://")):
        raise ConfigError(reader.at("ask"), f"the ask endpoint must be an http(s) URL: {ask!r}")
    limit = reader.reader("rate_limit")
    interval = limit.duration("interval") or 0.0
    burst = limit.integer("burst", 0, minimum=0)
    limit.done()
    reader.done()
    return OnDemandConfig(ask, interval, burst)


def _parse_load_file(data: Any, path: str) -> LoadedFile:
    reader = ObjectReader(data, path)
    certificate = reader.text("certificate")
    key = reader.text("key")
    if not certificate:
        raise ConfigError(reader.at("certificate"), "missing certificate file")
    if not key:
        raise ConfigError(reader.at("key"), "missing key file")
    tags = tuple(reader.strings("tags"))
    reader.ignore("format")
    reader.done()
    return LoadedFile(certificate, key, tags)


def _parse_policy(data: Any, path: str) -> AutomationPolicy:
    reader = ObjectReader(data, path)
    subjects = tuple(s.lower() for s in reader.strings("subjects"))
    issuers = tuple(
        _parse_issuer(item, join_path(reader.at("issuers"), index))
        for index, item in enumerate(reader.array("issuers"))
    )
    on_demand = reader.flag("on_demand")
    ratio = reader.number("renewal_window_ratio", DEFAULT_RENEWAL_RATIO) or DEFAULT_RENEWAL_RATIO
    if not 0 < ratio <= 1:
        raise ConfigError(reader.at("renewal_window_ratio"), "must be between 0 and 1")
    key_type = reader.text("key_type", "p256") or "p256"
    if key_type not in KEY_TYPES:
        raise ConfigError(reader.at("key_type"), f"unsupported key type {key_type!r}")
    managers = tuple(
        _parse_cert_manager(item, join_path(reader.at("get_certificate"), index))
        for index, item in enumerate(reader.array("get_certificate"))
    )
    reader.ignore("must_staple", "storage", "disable_ocsp_stapling", "ocsp_overrides")
    reader.done()
    return AutomationPolicy(subjects, issuers, on_demand, float(ratio), key_type, managers)


def _parse_cert_manager(data: Any, path: str) -> str:
    """One ``get_certificate`` manager; only ``http`` (a URL asked at handshake)."""
    reader = ObjectReader(data, path, what="object (certificate manager)")
    via = reader.text("via")
    if via == "tailscale":
        raise ConfigError(
            reader.at("via"),
            "the tailscale certificate manager (tls.get_certificate.tailscale) is not "
            "supported by caddytw: it needs a local Tailscale daemon; use http",
        )
    if via != "http":
        raise ConfigError(reader.at("via"), f"unsupported certificate manager {via!r}")
    url = reader.text("url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(reader.at("url"), f"expected an http(s) URL, got {url!r}")
    reader.done()
    return str(url)


def _parse_issuer(data: Any, path: str) -> IssuerConfig:
    reader = ObjectReader(data, path, what="object (issuer)")
    module = reader.text("module")
    if module == "internal":
        ca = reader.text("ca", "local") or "local"
        lifetime = reader.duration("lifetime") or DEFAULT_INTERNAL_LIFETIME
        reader.ignore("sign_with_root")
        reader.done()
        return IssuerConfig("internal", ca=ca, lifetime=lifetime)
    if module not in ("acme", "zerossl"):
        raise ConfigError(reader.at("module"), f"unsupported issuer module {module!r}")
    api_key = reader.text("api_key") if module == "zerossl" else ""
    account = _parse_external_account(reader.raw("external_account"), reader.at("external_account"))
    ca = reader.text("ca") or (ZEROSSL if module == "zerossl" else LETS_ENCRYPT)
    email = reader.text("email")
    roots = tuple(reader.strings("trusted_roots_pem_files"))
    challenges = reader.reader("challenges")
    http = _parse_challenge(challenges.raw("http"), challenges.at("http"))
    tls_alpn = _parse_challenge(challenges.raw("tls-alpn"), challenges.at("tls-alpn"))
    dns = _parse_dns(challenges.raw("dns"), challenges.at("dns"))
    challenges.ignore("bind_host")
    challenges.done()
    reader.ignore("test_ca", "acme_timeout", "preferred_chains")
    reader.done()
    if http.disabled and tls_alpn.disabled and not (dns and dns.provider):
        raise ConfigError(challenges.path, "every challenge type is disabled")
    return IssuerConfig(
        module,
        ca,
        email,
        roots,
        http,
        tls_alpn,
        external_account=account,
        api_key=api_key,
        dns=dns,
    )


def _parse_external_account(data: Any, path: str) -> ExternalAccount | None:
    if data is None:
        return None
    reader = ObjectReader(data, path)
    key_id = reader.text("key_id")
    mac_key = reader.text("mac_key")
    reader.done()
    if not key_id:
        raise ConfigError(reader.at("key_id"), "missing key_id")
    import josepy  # only for an external account binding

    try:
        if not josepy.b64.b64decode(mac_key):
            raise ValueError("empty")
    except (ValueError, TypeError):
        raise ConfigError(reader.at("mac_key"), "expected a base64url MAC key") from None
    return ExternalAccount(key_id, mac_key)


def _parse_dns(data: Any, path: str) -> DNSChallengeConfig | None:
    if data is None:
        return None
    reader = ObjectReader(data, path)
    provider = _parse_dns_provider(reader.raw("provider"), reader.at("provider"))
    ttl = reader.duration("ttl") or 0.0
    delay = reader.duration("propagation_delay") or 0.0
    timeout = reader.duration("propagation_timeout")
    resolvers = tuple(reader.strings("resolvers"))
    override = reader.text("override_domain")
    reader.done()
    return DNSChallengeConfig(
        provider,
        ttl,
        delay,
        DEFAULT_PROPAGATION_TIMEOUT if timeout is None or timeout == 0 else timeout,
        resolvers,
        override,
    )


def _parse_dns_provider(data: Any, path: str) -> RFC2136Provider | None:
    if data is None:
        return None
    reader = ObjectReader(data, path, what="object (DNS provider)")
    name = reader.text("name")
    if name != "rfc2136":
        raise ConfigError(
            reader.at("name"),
            f"DNS provider {name!r} (dns.providers.{name}) is not supported by caddytw "
            "(only rfc2136)",
        )
    server = reader.text("server")
    key_name = reader.text("key_name")
    key = reader.text("key")
    alg = (reader.text("key_alg") or "hmac-sha256").lower().rstrip(".")
    reader.done()
    if not server:
        raise ConfigError(reader.at("server"), "missing DNS server address")
    if alg not in TSIG_ALGORITHMS:
        raise ConfigError(reader.at("key_alg"), f"unsupported TSIG algorithm {alg!r}")
    if bool(key_name) != bool(key):
        raise ConfigError(reader.at("key"), "key_name and key go together")
    return RFC2136Provider(server, key_name, key, alg)


def _parse_challenge(data: Any, path: str) -> ChallengeConfig:
    if data is None:
        return ChallengeConfig()
    reader = ObjectReader(data, path)
    disabled = reader.flag("disabled")
    port = reader.integer("alternate_port", 0, minimum=0)
    if port > 65535:
        raise ConfigError(reader.at("alternate_port"), "must be a port number")
    reader.done()
    return ChallengeConfig(disabled, port)


def parse_connection_policies(data: list[Any] | None, path: str) -> tuple[ConnectionPolicy, ...]:
    if not data:
        return ()
    return tuple(
        _parse_connection_policy(item, join_path(path, index)) for index, item in enumerate(data)
    )


def _parse_connection_policy(data: Any, path: str) -> ConnectionPolicy:
    reader = ObjectReader(data, path)
    match = reader.reader("match")
    sni = tuple(match.strings("sni"))
    match.done()
    protocol_min = _protocol(reader, "protocol_min", "tls1.2")
    protocol_max = _protocol(reader, "protocol_max", "tls1.3")
    if protocol_min > protocol_max:
        raise ConfigError(reader.at("protocol_min"), "protocol_min is above protocol_max")
    alpn = tuple(reader.strings("alpn"))
    default_sni = reader.text("default_sni")
    selection = _parse_selection(
        reader.raw("certificate_selection"), reader.at("certificate_selection")
    )
    suites = tuple(reader.strings("cipher_suites"))
    for index, suite in enumerate(suites):
        if suite not in CIPHER_SUITES:
            raise ConfigError(
                join_path(reader.at("cipher_suites"), index), f"unsupported cipher suite {suite!r}"
            )
    curves = tuple(reader.strings("curves"))
    for index, curve in enumerate(curves):
        if curve not in CURVES:
            raise ConfigError(join_path(reader.at("curves"), index), f"unsupported curve {curve!r}")
    client_auth = _parse_client_auth(
        reader.raw("client_authentication"), reader.at("client_authentication")
    )
    reader.ignore("fallback_sni", "insecure_secrets_log")
    reader.done()
    return ConnectionPolicy(
        sni, protocol_min, protocol_max, alpn, default_sni, selection, suites, curves, client_auth
    )


def _parse_client_auth(data: Any, path: str) -> ClientAuthentication | None:
    """Caddy's default mode: ``require_and_verify`` when anything is trusted, else none."""
    if data is None:
        return None
    reader = ObjectReader(data, path)
    ders: dict[str, list[bytes]] = {"ca": [], "leaf": []}
    for kind in ("ca", "leaf"):
        key = f"trusted_{kind}_certs"
        for index, text in enumerate(reader.strings(key)):
            try:
                der = base64.b64decode(text, validate=True)
                x509.load_der_x509_certificate(der)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    join_path(reader.at(key), index), "expected a base64 DER certificate"
                ) from None
            ders[kind].append(der)
    key = "trusted_ca_certs_pem_files"
    for index, file_name in enumerate(reader.strings(key)):
        try:
            with open(file_name, "rb") as handle:
                found = x509.load_pem_x509_certificates(handle.read())
        except OSError as error:
            raise ConfigError(
                join_path(reader.at(key), index), f"cannot read {file_name}: {error.strerror}"
            ) from None
        except ValueError as error:
            raise ConfigError(
                join_path(reader.at(key), index), f"no certificate in {file_name}: {error}"
            ) from None
        ders["ca"] += [cert.public_bytes(Encoding.DER) for cert in found]
    mode = reader.text("mode")
    reader.done()
    if mode and mode not in CLIENT_AUTH_MODES:
        raise ConfigError(join_path(path, "mode"), f"client auth mode not recognized: {mode!r}")
    if not mode:
        if not (ders["ca"] or ders["leaf"]):
            return None
        mode = "require_and_verify"
    return ClientAuthentication(mode, tuple(ders["ca"]), tuple(ders["leaf"]))


def _protocol(reader: ObjectReader, key: str, default: str) -> int:
    name = reader.text(key, default) or default
    if name not in PROTOCOLS:
        raise ConfigError(reader.at(key), f"unsupported protocol {name!r}")
    return PROTOCOLS[name]


def _parse_selection(data: Any, path: str) -> CertificateSelection:
    if data is None:
        return CertificateSelection()
    reader = ObjectReader(data, path)
    serials: list[int] = []
    for index, value in enumerate(reader.array("serial_number")):
        if isinstance(value, str) and value.isdigit():
            serials.append(int(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            serials.append(value)
        else:
            raise ConfigError(
                join_path(reader.at("serial_number"), index), "expected a serial number"
            )
    organization = tuple(reader.strings("subject_organization"))
    any_tag = tuple(reader.strings("any_tag"))
    all_tags = tuple(reader.strings("all_tags"))
    reader.ignore("public_key_algorithm")
    reader.done()
    return CertificateSelection(tuple(serials), organization, any_tag, all_tags)
