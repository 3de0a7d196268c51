"""ACME options end to end on pebble: key types, external account binding, zerossl."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.ports import free_port
from tests.support.server import ServerProcess, running_server
from tests.tls.client import client_context
from tests.tls.conftest import tls_config
from tests.tls.pebble import Pebble, running_challtestsrv, running_pebble

KEY_TYPES = {
    "ed25519": lambda k: isinstance(k, ed25519.Ed25519PublicKey),
    "p256": lambda k: isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1",
    "p384": lambda k: isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp384r1",
    "rsa2048": lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 2048,
    "rsa4096": lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 4096,
}


def issuer(pebble: Pebble, **extra: Any) -> dict[str, Any]:
    return pebble.issuer({"tls-alpn": {"disabled": True}}, **extra)


def site_config(
    http_port: int, https_port: int, storage: Path, policies: list[dict[str, Any]]
) -> dict[str, Any]:
    """One TLS site for every policy's subjects (HTTP-01 is answered by the redirect
    server automatic HTTPS starts on ``http_port``)."""
    names = [n for p in policies for n in p["subjects"]]
    route = {"match": [{"host": names}], "handle": [{"handler": "static_response", "body": "ok"}]}
    return tls_config(
        https_port,
        http_port,
        storage,
        routes=[route],
        tls_extra={"automation": {"policies": policies}},
    )


def served_key(port: int, name: str, root: Path) -> Any:
    import socket

    context = client_context(str(root))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        from cryptography import x509

        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).public_key()


def wait_served(server: ServerProcess, port: int, name: str, root: Path) -> Any:
    deadline = time.monotonic() + 60
    while True:
        try:
            return served_key(port, name, root)
        except OSError:
            pass
        if time.monotonic() > deadline or server.process.poll() is not None:
            pytest.fail(f"no certificate for {name}:\n" + server.log())
        time.sleep(0.3)


def test_key_types_issued_by_pebble(tmp_path: Path):
    """Each ``key_type`` orders a certificate whose public key is of that type."""
    http_port, https_port = free_port(), free_port()
    with (
        running_challtestsrv(tmp_path / "dns") as dns,
        running_pebble(tmp_path / "pebble", http_port, https_port, dns_server=dns) as pebble,
    ):
        root = pebble.write_root(tmp_path / "root.pem")
        policies = [
            {"subjects": [f"{kind}.test"], "key_type": kind, "issuers": [issuer(pebble)]}
            for kind in KEY_TYPES
        ]
        config = site_config(http_port, https_port, tmp_path / "storage", policies)
        with running_server(config, tmp_path, [https_port, http_port]) as server:
            for kind, check in KEY_TYPES.items():
                key = wait_served(server, https_port, f"{kind}.test", root)
                assert check(key), (kind, key)


def test_external_account_binding_acme_and_zerossl(tmp_path: Path):
    """Pebble requiring EAB: the acme issuer with ``external_account`` and the zerossl
    module (ACME with EAB, here pointed at pebble) both get certificates; an issuer
    without EAB is refused and says so in the log."""
    http_port, https_port = free_port(), free_port()
    mac = base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()
    with (
        running_challtestsrv(tmp_path / "dns") as dns,
        running_pebble(
            tmp_path / "pebble", http_port, https_port, dns_server=dns, eab_keys={"kid-1": mac}
        ) as pebble,
    ):
        root = pebble.write_root(tmp_path / "root.pem")
        eab = {"key_id": "kid-1", "mac_key": mac}
        policies = [
            {"subjects": ["acme.test"], "issuers": [issuer(pebble, external_account=eab)]},
            {
                "subjects": ["zerossl.test"],
                "issuers": [
                    {**issuer(pebble, external_account=eab), "module": "zerossl", "api_key": "x"}
                ],
            },
            {"subjects": ["plain.test"], "issuers": [issuer(pebble, email="a@b.test")]},
        ]
        config = site_config(http_port, https_port, tmp_path / "storage", policies)
        with running_server(config, tmp_path, [https_port, http_port]) as server:
            wait_served(server, https_port, "acme.test", root)
            wait_served(server, https_port, "zerossl.test", root)
            deadline = time.monotonic() + 20
            while "could not obtain certificate for plain.test" not in server.log():
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            assert "externalAccountRequired" in server.log() or "External account" in server.log()


def test_zerossl_eab_credentials_from_the_api(tmp_path: Path):
    """Without ``external_account`` the zerossl issuer asks ZeroSSL's API for EAB
    credentials (by access key, else by email); here a local HTTP service answers as
    api.zerossl.com does (the EAB itself is tested against pebble above)."""
    import http.server
    import json
    import threading
    from urllib.parse import parse_qs, urlsplit

    from caddytw.tls.acme import AcmeError, zerossl_eab

    mac = base64.urlsafe_b64encode(b"z" * 32).rstrip(b"=").decode()
    seen: list[tuple[str, dict[str, list[str]], dict[str, list[str]]]] = []

    class ZeroSSLAPI(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            where = urlsplit(self.path)
            seen.append((where.path, parse_qs(where.query), form))
            known = parse_qs(where.query).get("access_key") == ["good"] or form.get("email")
            answer: dict[str, Any] = (
                {"success": True, "eab_kid": "kid-z", "eab_hmac_key": mac}
                if known
                else {"success": False, "error": {"code": 101, "type": "invalid_access_key"}}
            )
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ZeroSSLAPI)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{api.server_address[1]}"
    try:
        account = zerossl_eab("good", "", base)
        assert (account.key_id, account.mac_key) == ("kid-z", mac)
        assert zerossl_eab("", "me@example.test", base).key_id == "kid-z"
        with pytest.raises(AcmeError, match="invalid_access_key"):
            zerossl_eab("bad", "", base)
        with pytest.raises(AcmeError, match="needs an api_key"):
            zerossl_eab("", "", base)
    finally:
        api.shutdown()
        api.server_close()
    assert [(path, query) for path, query, _ in seen[:2]] == [
        ("/acme/eab-credentials", {"access_key": ["good"]}),
        ("/acme/eab-credentials-email", {}),
    ]
    assert seen[1][2] == {"email": ["me@example.test"]}
