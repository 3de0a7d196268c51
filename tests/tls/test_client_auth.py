"""Client authentication (mTLS) in connection policies, with curl as the client."""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.compat.harness import CADDY, both_servers
from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.client import client_context, https_get
from tests.tls.conftest import tls_config
from tests.tls.pki import TestCA

MODES = ("request", "require", "verify_if_given", "require_and_verify")


def curl(
    port: int, server_ca: Path, cert: tuple[Path, Path] | None, *extra: str
) -> tuple[int, str]:
    """(curl's exit code, body): 0 and the body, or a TLS failure code."""
    command = [
        "curl",
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        str(server_ca),
        "--resolve",
        f"localhost:{port}:127.0.0.1",
        *extra,
        f"https://localhost:{port}/",
    ]
    if cert is not None:
        command += ["--cert", str(cert[0]), "--key", str(cert[1])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout


def test_client_auth_modes_with_curl(tmp_path: Path):
    server_ca, client_ca, stranger_ca = TestCA("server"), TestCA("clients"), TestCA("stranger")
    server_ca_file = server_ca.write(tmp_path / "server-ca.pem")
    cert, key, _ = server_ca.write_leaf(tmp_path, "server", ["localhost"])
    client_ca_file = client_ca.write(tmp_path / "client-ca.pem")
    good = client_ca.write_leaf(tmp_path, "good", ["alice.example"], organization="Team")[:2]
    stranger = stranger_ca.write_leaf(tmp_path, "stranger", ["mallory.example"])[:2]
    client_ca_b64 = base64.b64encode(client_ca.cert.public_bytes(serialization.Encoding.DER))
    ports = {mode: free_port() for mode in MODES}
    leaf_port = free_port()
    body = (
        "{http.request.tls.client.subject}|{http.request.tls.version}"
        "|{http.request.tls.cipher_suite}"
    )
    servers = {
        mode: {
            "listen": [f"127.0.0.1:{port}"],
            "routes": [{"handle": [{"handler": "static_response", "body": body}]}],
            "tls_connection_policies": [
                {
                    "client_authentication": {
                        "mode": mode,
                        # Both spellings: base64 DER and a PEM file.
                        **(
                            {"trusted_ca_certs": [client_ca_b64.decode()]}
                            if mode.startswith("require")
                            else {"trusted_ca_certs_pem_files": [str(client_ca_file)]}
                        ),
                    }
                }
            ],
        }
        for mode, port in ports.items()
    }
    # Leaf pinning: only this exact certificate, and no mode given (require_and_verify).
    good_der = x509.load_pem_x509_certificate(good[0].read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    servers["leaf"] = {
        "listen": [f"127.0.0.1:{leaf_port}"],
        "routes": [{"handle": [{"handler": "static_response", "body": body}]}],
        "tls_connection_policies": [
            {
                "client_authentication": {
                    "trusted_ca_certs": [client_ca_b64.decode()],
                    "trusted_leaf_certs": [base64.b64encode(good_der).decode()],
                }
            }
        ],
    }
    config = {
        "storage": {"module": "file_system", "root": str(tmp_path / "storage")},
        "apps": {
            "http": {"http_port": free_port(), "servers": servers},
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }
    with running_server(config, tmp_path, [*ports.values(), leaf_port]):
        outcomes = {
            mode: tuple(
                curl(port, server_ca_file, client)[0] == 0 for client in (None, stranger, good)
            )
            for mode, port in ports.items()
        }
        # (no certificate, untrusted certificate, trusted certificate) -> handshake ok?
        assert outcomes == {
            "request": (True, True, True),
            "require": (False, True, True),
            "verify_if_given": (True, False, True),
            "require_and_verify": (False, False, True),
        }
        code, text = curl(ports["require_and_verify"], server_ca_file, good)
        assert (code, text) == (0, "CN=alice.example,O=Team|tls1.3|TLS_AES_256_GCM_SHA384")
        # Go's (Caddy's) cipher suite names, TLS 1.2 included.
        assert curl(ports["request"], server_ca_file, None, "--tls-max", "1.2") == (
            0,
            "|tls1.2|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        )
        assert curl(leaf_port, server_ca_file, good)[0] == 0
        other_good = client_ca.write_leaf(tmp_path, "other", ["bob.example"])[:2]
        assert curl(leaf_port, server_ca_file, other_good)[0] != 0
        assert curl(leaf_port, server_ca_file, None)[0] != 0


def test_client_auth_only_for_the_policy_that_has_it(tmp_path: Path):
    """The first policy's client authentication must not leak to a later policy (the
    listener's base context is built from the first one)."""
    ca = TestCA("server")
    cert, key, _ = ca.write_leaf(tmp_path, "server", ["secure.localhost", "open.localhost"])
    port = free_port()
    config = tls_config(
        port,
        free_port(),
        tmp_path / "storage",
        load_files=[{"certificate": str(cert), "key": str(key)}],
        policies=[
            {
                "match": {"sni": ["secure.localhost"]},
                "client_authentication": {
                    "mode": "require",
                    "trusted_ca_certs_pem_files": [str(ca.write(tmp_path / "ca.pem"))],
                },
            },
            {},
        ],
    )
    with running_server(config, tmp_path, [port]):
        assert https_get(port, "open.localhost", client_context())[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_get(port, "secure.localhost", client_context())


@pytest.mark.skipif(CADDY is None, reason="needs Debian's caddy")
@pytest.mark.parametrize("mode", ["request", "verify_if_given", "require_and_verify"])
def test_client_auth_side_by_side_with_caddy(tmp_path: Path, mode: str):
    """Same config, same clients: Caddy and caddytw accept and refuse the same
    handshakes and render the client placeholders the same."""
    server_ca, client_ca, stranger_ca = TestCA("server"), TestCA("clients"), TestCA("stranger")
    server_ca_file = server_ca.write(tmp_path / "server-ca.pem")
    cert, key, _ = server_ca.write_leaf(tmp_path, "server", ["localhost"])
    good = client_ca.write_leaf(tmp_path, "good", ["alice.example"], organization="Team")[:2]
    stranger = stranger_ca.write_leaf(tmp_path, "stranger", ["mallory.example"])[:2]
    fields = ("subject", "issuer", "serial", "fingerprint", "public_key", "san.dns_names.0")
    body = "|".join(f"{{http.request.tls.client.{field}}}" for field in fields)
    config = {
        "apps": {
            "http": {
                "servers": {
                    "srv0": {
                        "listen": [],
                        "automatic_https": {"disable": True},
                        "routes": [{"handle": [{"handler": "static_response", "body": body}]}],
                        "tls_connection_policies": [
                            {
                                "client_authentication": {
                                    "mode": mode,
                                    "trusted_ca_certs_pem_files": [
                                        str(client_ca.write(tmp_path / "client-ca.pem"))
                                    ],
                                }
                            }
                        ],
                    }
                }
            },
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        }
    }
    with both_servers(config, tmp_path) as (caddy_port, ours_port):
        for client in (None, stranger, good):
            theirs = curl(caddy_port, server_ca_file, client)
            ours = curl(ours_port, server_ca_file, client)
            assert (ours[0] == 0) == (theirs[0] == 0), client
            if client is not None and ours[0] == 0:
                # (Without a client certificate 2.6.2 leaves the placeholders as they
                # are; current Caddy, as caddytw, renders them empty.)
                assert ours[1] == theirs[1]
