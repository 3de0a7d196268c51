"""Parsing ``apps.tls``, ``storage`` and connection policies: strict, path-named errors."""

from __future__ import annotations

import pytest

from caddytw.config.errors import ConfigError
from caddytw.tls.config import (
    LETS_ENCRYPT,
    PROTOCOLS,
    parse_connection_policies,
    parse_storage,
    parse_tls_app,
)


def test_full_tls_app():
    app = parse_tls_app(
        {
            "certificates": {
                "load_files": [{"certificate": "a.crt", "key": "a.key", "tags": ["t"]}]
            },
            "automation": {
                "policies": [
                    {
                        "subjects": ["Example.COM"],
                        "issuers": [
                            {
                                "module": "acme",
                                "ca": "https://ca/dir",
                                "email": "e@x",
                                "trusted_roots_pem_files": ["r.pem"],
                                "challenges": {
                                    "http": {"alternate_port": 8080},
                                    "tls-alpn": {"disabled": True},
                                },
                            },
                            {"module": "internal", "lifetime": "1h"},
                        ],
                        "renewal_window_ratio": 0.5,
                    }
                ],
                "renew_interval": "30s",
            },
        },
        {"module": "file_system", "root": "/srv/data"},
    )
    assert app.load_files[0].tags == ("t",)
    policy = app.policies[0]
    assert policy.subjects == ("example.com",)
    acme, internal = policy.issuers
    assert acme.http.alternate_port == 8080 and acme.tls_alpn.disabled
    assert acme.storage_name == "ca-dir"
    assert internal.lifetime == 3600
    assert policy.renewal_window_ratio == 0.5
    assert app.renew_interval == 30
    assert app.storage_root == "/srv/data"


def test_defaults():
    app = parse_tls_app({}, {})
    assert app.policies == () and app.load_files == ()
    assert app.storage_root.endswith("caddytw")
    issuer = (
        parse_tls_app({"automation": {"policies": [{"issuers": [{"module": "acme"}]}]}}, {})
        .policies[0]
        .issuers[0]
    )
    assert issuer.ca == LETS_ENCRYPT
    assert issuer.storage_name == "acme-v02.api.letsencrypt.org-directory"
    (policy,) = parse_connection_policies([{}], "p")
    assert (policy.protocol_min, policy.protocol_max) == (PROTOCOLS["tls1.2"], PROTOCOLS["tls1.3"])


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"bogus": 1}, "apps.tls.bogus"),
        (
            {"certificates": {"load_files": [{"certificate": "a"}]}},
            "apps.tls.certificates.load_files[0].key",
        ),
        ({"certificates": {"load_pem": []}}, "apps.tls.certificates.load_pem"),
        (
            {"automation": {"policies": [{"issuers": [{"module": "bogus"}]}]}},
            "apps.tls.automation.policies[0].issuers[0].module",
        ),
        (
            {"automation": {"policies": [{"issuers": [{"module": "acme", "email": 3}]}]}},
            "apps.tls.automation.policies[0].issuers[0].email",
        ),
        (
            {"automation": {"policies": [{"issuers": [{"module": "internal", "x": 1}]}]}},
            "apps.tls.automation.policies[0].issuers[0].x",
        ),
        (
            {
                "automation": {
                    "policies": [
                        {
                            "issuers": [
                                {
                                    "module": "acme",
                                    "challenges": {"dns": {"provider": {"name": "cloudflare"}}},
                                }
                            ]
                        }
                    ]
                }
            },
            "apps.tls.automation.policies[0].issuers[0].challenges.dns.provider.name",
        ),
        (
            {
                "automation": {
                    "policies": [
                        {
                            "issuers": [
                                {
                                    "module": "acme",
                                    "challenges": {
                                        "http": {"disabled": True},
                                        "tls-alpn": {"disabled": True},
                                    },
                                }
                            ]
                        }
                    ]
                }
            },
            "apps.tls.automation.policies[0].issuers[0].challenges",
        ),
        (
            {"automation": {"policies": [{"renewal_window_ratio": 2}]}},
            "apps.tls.automation.policies[0].renewal_window_ratio",
        ),
        (
            {"automation": {"policies": [{"get_certificate": [{"via": "tailscale"}]}]}},
            "apps.tls.automation.policies[0].get_certificate[0].via",
        ),
        (
            {"automation": {"policies": [{"key_type": "rsa1024"}]}},
            "apps.tls.automation.policies[0].key_type",
        ),
        (
            {"automation": {"on_demand": {"ask": "localhost:9/ok"}}},
            "apps.tls.automation.on_demand.ask",
        ),
        (
            {"automation": {"on_demand": {"rate_limit": {"burst": -1}}}},
            "apps.tls.automation.on_demand.rate_limit.burst",
        ),
        (
            {
                "automation": {
                    "policies": [
                        {"issuers": [{"module": "acme", "external_account": {"key_id": "k"}}]}
                    ]
                }
            },
            "apps.tls.automation.policies[0].issuers[0].external_account.mac_key",
        ),
        ({"certificates": {"automate": "a.com"}}, "apps.tls.certificates.automate"),
    ],
)
def test_tls_app_errors_name_the_path(data, path):
    with pytest.raises(ConfigError) as error:
        parse_tls_app(data, {})
    assert error.value.path == path


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([{"protocol_min": "tls9"}], "s[0].protocol_min"),
        ([{"protocol_min": "tls1.3", "protocol_max": "tls1.2"}], "s[0].protocol_min"),
        ([{}, {"match": {"sni": "a"}}], "s[1].match.sni"),
        ([{"match": {"remote_ip": {}}}], "s[0].match.remote_ip"),
        ([{"cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}], "s[0].cipher_suites[0]"),
        ([{"curves": ["x448"]}], "s[0].curves[0]"),
        (
            [{"certificate_selection": {"serial_number": [True]}}],
            "s[0].certificate_selection.serial_number[0]",
        ),
        ([{"client_authentication": {"mode": "maybe"}}], "s[0].client_authentication.mode"),
        (
            [{"client_authentication": {"trusted_ca_certs": ["not base64!"]}}],
            "s[0].client_authentication.trusted_ca_certs[0]",
        ),
        (
            [{"client_authentication": {"trusted_ca_certs_pem_files": ["/nonexistent.pem"]}}],
            "s[0].client_authentication.trusted_ca_certs_pem_files[0]",
        ),
    ],
)
def test_connection_policy_errors(data, path):
    with pytest.raises(ConfigError) as error:
        parse_connection_policies(data, "s")
    assert error.value.path == path


def test_connection_policy_fields():
    (policy,) = parse_connection_policies(
        [
            {
                "match": {"sni": ["A.test"]},
                "protocol_min": "tls1.3",
                "alpn": ["http/1.1"],
                "default_sni": "a.test",
                "certificate_selection": {"any_tag": ["x"], "serial_number": ["12"]},
                "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            }
        ],
        "s",
    )
    assert policy.matches("a.test") and not policy.matches("b.test") and not policy.matches(None)
    assert policy.certificate_selection.serial_number == (12,)
    assert policy.alpn == ("http/1.1",)


def test_storage():
    assert parse_storage({"module": "file_system", "root": "/x"}).root == "/x"
    with pytest.raises(ConfigError) as error:
        parse_storage({"module": "redis"})
    assert error.value.path == "storage.module"


def test_postgres_storage_connection_string_is_checked_at_its_path():
    pytest.importorskip("psycopg")
    dsn = "postgres://caddy@db.example:5432/caddy"
    parsed = parse_storage({"module": "postgres", "connection_string": dsn})
    assert (parsed.module, parsed.connection_string) == ("postgres", dsn)
    for bad in ("", "postgres://caddy@db:notaport/caddy", "host=db bogus_key=1", 5):
        with pytest.raises(ConfigError) as error:
            parse_storage({"module": "postgres", "connection_string": bad})
        assert error.value.path == "storage.connection_string", bad
    with pytest.raises(ConfigError) as error:
        parse_storage({"module": "postgres", "connection_string": dsn, "root": "/x"})
    assert error.value.path == "storage.root"
