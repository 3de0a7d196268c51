"""DNS-01 through RFC 2136: a real Knot DNS takes the TSIG-signed updates and pebble
looks the TXT records up there (``-dnsserver``), for a name and a wildcard."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from caddytw.tls.config import DNSChallengeConfig, RFC2136Provider
from caddytw.tls.dns01 import DNSError, RFC2136Solver, split_address
from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.client import client_context, handshake
from tests.tls.conftest import tls_config
from tests.tls.knot import Knot, knotd, running_knot
from tests.tls.pebble import running_pebble

pytestmark = pytest.mark.skipif(knotd() is None, reason="knotd missing (apt-get install knot)")


def txt_values(knot: Knot, name: str) -> list[bytes]:
    host, port = split_address(knot.address)
    response = dns.query.tcp(dns.message.make_query(name, dns.rdatatype.TXT), host, port=port)
    return [b"".join(r.strings) for rrset in response.answer for r in rrset]


def provider(knot: Knot, key: str | None = None) -> dict[str, str]:
    return {
        "name": "rfc2136",
        "server": knot.address,
        "key_name": knot.key_name,
        "key_alg": "hmac-sha256",
        "key": key or knot.key,
    }


def test_dns01_rfc2136_with_knot_and_pebble(tmp_path: Path):
    http_port, https_port = free_port(), free_port()
    names = ["www.example.test", "*.example.test"]
    with (
        running_knot(tmp_path / "knot") as knot,
        running_pebble(tmp_path / "pebble", http_port, https_port, dns_server=knot.address) as pb,
    ):
        root = pb.write_root(tmp_path / "root.pem")
        issuer = pb.issuer({"dns": {"provider": provider(knot), "ttl": "30s"}})
        config = tls_config(
            https_port,
            http_port,
            tmp_path / "storage",
            routes=[{"match": [{"host": names}], "handle": [{"handler": "static_response"}]}],
            tls_extra={"automation": {"policies": [{"subjects": names, "issuers": [issuer]}]}},
            server_extra={"automatic_https": {"disable_redirects": True}},
        )
        with running_server(config, tmp_path, [https_port]) as server:
            context = client_context(str(root))
            deadline = time.monotonic() + 60
            served: dict[str, list[str]] = {}
            # The wildcard may arrive first and serve www too (as Caddy would) until
            # www's own certificate is there: wait for both.
            while served.get("www.example.test") != ["www.example.test"] or len(served) < 2:
                for sni in ("www.example.test", "other.example.test"):
                    with contextlib.suppress(OSError):
                        served[sni] = handshake(https_port, sni, context).names
                if time.monotonic() > deadline or server.process.poll() is not None:
                    pytest.fail(server.log() + knot.log())
                time.sleep(0.3)
            assert served == {
                "www.example.test": ["www.example.test"],
                "other.example.test": ["*.example.test"],
            }
            assert "http-01" not in server.log() and "tls-alpn-01" not in server.log()
        # The solver removed what it added.
        assert txt_values(knot, "_acme-challenge.www.example.test.") == []
        assert txt_values(knot, "_acme-challenge.example.test.") == []


def test_rfc2136_update_refused_with_a_wrong_key(tmp_path: Path):
    with running_knot(tmp_path / "knot") as knot:
        good = RFC2136Solver(
            RFC2136Provider(knot.address, knot.key_name, knot.key), DNSChallengeConfig()
        )
        good.present("www.example.test", "value-1")
        assert txt_values(knot, "_acme-challenge.www.example.test.") == [b"value-1"]
        good.cleanup("www.example.test", "value-1")
        assert txt_values(knot, "_acme-challenge.www.example.test.") == []
        bad = RFC2136Solver(
            RFC2136Provider(
                knot.address, knot.key_name, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            ),
            DNSChallengeConfig(),
        )
        with pytest.raises(DNSError):
            bad.present("www.example.test", "value-2")
        assert txt_values(knot, "_acme-challenge.www.example.test.") == []


def test_record_names() -> None:
    provider = RFC2136Provider("127.0.0.1:53", "", "")
    plain = RFC2136Solver(provider, DNSChallengeConfig())
    assert plain.record_name("www.example.test") == "_acme-challenge.www.example.test."
    assert plain.record_name("*.example.test") == "_acme-challenge.example.test."
    delegated = RFC2136Solver(provider, DNSChallengeConfig(override_domain="acme.other.test"))
    assert delegated.record_name("www.example.test") == "acme.other.test."
