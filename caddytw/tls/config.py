"""``apps.tls``, ``storage`` and server ``tls_connection_policies`` as frozen objects.

The core carries these keys raw (see :mod:`caddytw.config.model`); this module checks
them as strictly as Caddy does (unknown fields are errors naming their JSON path) so a
config that caddytw accepts means the same thing it would mean to Caddy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
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
class IssuerConfig:
    """An ``acme`` or ``internal`` issuer."""

    module: str
    ca: str = ""
    email: str = ""
    trusted_roots_pem_files: tuple[str, ...] = ()
    http: ChallengeConfig = ChallengeConfig()
    tls_alpn: ChallengeConfig = ChallengeConfig()
    lifetime: float = DEFAULT_INTERNAL_LIFETIME

    @property
    def storage_name(self) -> str:
        """The issuer's folder under ``certificates/`` (Caddy: the CA host + path)."""
        if self.module == "internal":
            return self.ca or "local"
        from urllib.parse import urlsplit

        parts = urlsplit(self.ca or LETS_ENCRYPT)
        text = (parts.netloc + parts.path).strip("/")
        return text.replace(":", "-").replace("/", "-").lower()


@dataclass(frozen=True)
class AutomationPolicy:
    subjects: tuple[str, ...] = ()
    issuers: tuple[IssuerConfig, ...] = ()
    on_demand: bool = False
    renewal_window_ratio: float = DEFAULT_RENEWAL_RATIO
    key_type: str = "p256"


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
    for key in certificates.data:
        if key not in ("load_files",):
            raise ConfigError(certificates.at(key), f"unsupported certificate loader {key!r}")
    certificates.done()
    automation = reader.reader("automation")
    policies = tuple(
        _parse_policy(item, join_path(automation.at("policies"), index))
        for index, item in enumerate(automation.array("policies"))
    )
    renew = automation.duration("renew_interval") or DEFAULT_RENEW_INTERVAL
    automation.ignore("ocsp_interval", "storage_clean_interval", "on_demand")
    automation.done()
    reader.ignore("session_tickets", "cache", "disable_ocsp_stapling")
    reader.done()
    return TLSAppConfig(load_files, policies, renew, parse_storage(storage))


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
    if on_demand:
        raise ConfigError(reader.at("on_demand"), "on-demand TLS is not supported by caddytw")
    ratio = reader.number("renewal_window_ratio", DEFAULT_RENEWAL_RATIO) or DEFAULT_RENEWAL_RATIO
    if not 0 < ratio <= 1:
        raise ConfigError(reader.at("renewal_window_ratio"), "must be between 0 and 1")
    key_type = reader.text("key_type", "p256") or "p256"
    if key_type not in ("p256", "p384", "rsa2048", "rsa4096"):
        raise ConfigError(reader.at("key_type"), f"unsupported key type {key_type!r}")
    if reader.has("get_certificate"):
        raise ConfigError(
            reader.at("get_certificate"),
            "get_certificate (external certificate managers) is not supported by caddytw",
        )
    reader.ignore("must_staple", "storage", "disable_ocsp_stapling", "ocsp_overrides")
    reader.done()
    return AutomationPolicy(subjects, issuers, on_demand, float(ratio), key_type)


def _parse_issuer(data: Any, path: str) -> IssuerConfig:
    reader = ObjectReader(data, path, what="object (issuer)")
    module = reader.text("module")
    if module == "internal":
        ca = reader.text("ca", "local") or "local"
        lifetime = reader.duration("lifetime") or DEFAULT_INTERNAL_LIFETIME
        reader.ignore("sign_with_root")
        reader.done()
        return IssuerConfig("internal", ca=ca, lifetime=lifetime)
    if module == "zerossl":
        raise ConfigError(reader.at("module"), "the zerossl issuer is not supported by caddytw")
    if module != "acme":
        raise ConfigError(reader.at("module"), f"unsupported issuer module {module!r}")
    if reader.has("external_account"):
        raise ConfigError(
            reader.at("external_account"),
            "ACME external account binding (eab) is not supported by caddytw",
        )
    ca = reader.text("ca") or LETS_ENCRYPT
    email = reader.text("email")
    roots = tuple(reader.strings("trusted_roots_pem_files"))
    challenges = reader.reader("challenges")
    http = _parse_challenge(challenges.raw("http"), challenges.at("http"))
    tls_alpn = _parse_challenge(challenges.raw("tls-alpn"), challenges.at("tls-alpn"))
    if challenges.has("dns"):
        raise ConfigError(challenges.at("dns"), "DNS challenges are not supported by caddytw")
    challenges.ignore("bind_host")
    challenges.done()
    reader.ignore("test_ca", "acme_timeout", "preferred_chains")
    reader.done()
    if http.disabled and tls_alpn.disabled:
        raise ConfigError(challenges.path, "every challenge type is disabled")
    return IssuerConfig("acme", ca, email, roots, http, tls_alpn)


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
    if reader.has("client_authentication"):
        raise ConfigError(
            reader.at("client_authentication"), "client authentication is not supported"
        )
    reader.ignore("fallback_sni", "insecure_secrets_log")
    reader.done()
    return ConnectionPolicy(
        sni, protocol_min, protocol_max, alpn, default_sni, selection, suites, curves
    )


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
