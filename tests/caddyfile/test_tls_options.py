"""Caddyfile TLS options beyond Caddy 2.6.2's goldens: the ``rfc2136`` DNS provider
(the caddy-dns/rfc2136 plugin's syntax), and the JSON they make passing validation."""

from __future__ import annotations

from typing import Any

import pytest

from caddytw.caddyfile import CaddyfileError, adapt
from caddytw.config.model import parse_config
from caddytw.tls.automation import plan_automatic_https

PROVIDER = {
    "name": "rfc2136",
    "key_name": "acme-key.",
    "key_alg": "hmac-sha256",
    "key": "c2VjcmV0c2VjcmV0c2VjcmV0",
    "server": "127.0.0.1:5353",
}
BLOCK = (
    "rfc2136 {\n"
    "\t\t\tkey_name acme-key.\n"
    "\t\t\tkey_alg hmac-sha256\n"
    "\t\t\tkey c2VjcmV0c2VjcmV0c2VjcmV0\n"
    "\t\t\tserver 127.0.0.1:5353\n"
    "\t\t}"
)


def issuers(config: dict[str, Any]) -> list[dict[str, Any]]:
    policies = config["apps"]["tls"]["automation"]["policies"]
    found: list[dict[str, Any]] = policies[0]["issuers"]
    return found


def test_tls_dns_rfc2136() -> None:
    config, _ = adapt(f"example.test {{\n\ttls {{\n\t\tdns {BLOCK}\n\t}}\n\trespond ok\n}}\n")
    acme, zerossl = issuers(config)
    assert acme == {"module": "acme", "challenges": {"dns": {"provider": PROVIDER}}}
    assert zerossl == {**acme, "module": "zerossl"}
    plan = plan_automatic_https(parse_config(config))
    (issuer, _) = plan.managed["example.test"].issuers
    assert issuer.dns is not None and issuer.dns.provider is not None
    assert issuer.dns.provider.server == "127.0.0.1:5353"


def test_global_acme_dns_rfc2136() -> None:
    text = "{\n\tacme_dns " + BLOCK.replace("\t\t\t", "\t\t").replace("\t\t}", "\t}") + "\n}\n"
    config, _ = adapt(text + "example.test {\n\trespond ok\n}\n")
    assert all(i["challenges"]["dns"]["provider"] == PROVIDER for i in issuers(config))
    plan_automatic_https(parse_config(config))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("dns cloudflare tok", "dns.providers.cloudflare"),
        ("dns rfc2136 {\n\t\t\tport 53\n\t\t}", "unrecognized subdirective 'port'"),
        ("dns rfc2136 extra", "Wrong argument count"),
    ],
)
def test_dns_provider_errors(body: str, message: str) -> None:
    with pytest.raises(CaddyfileError) as error:
        adapt(f"example.test {{\n\ttls {{\n\t\t{body}\n\t}}\n}}\n")
    assert message in str(error.value)
