"""Certificates at handshake: on-demand TLS from pebble (ask endpoint, rate limit) and
``get_certificate`` from an HTTP certificate service; both services are real HTTP servers."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509

from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.client import client_context
from tests.tls.conftest import tls_config
from tests.tls.pebble import running_challtestsrv, running_pebble
from tests.tls.pki import TestCA

Answer = Callable[[dict[str, list[str]]], tuple[int, bytes]]


@contextmanager
def http_service(answer: Answer) -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A loopback HTTP server answering GETs with ``answer(query)``; yields its URL and
    the queries it got."""
    seen: list[dict[str, list[str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            seen.append(query)
            status, body = answer(query)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/check", seen
    finally:
        server.shutdown()
        server.server_close()


def served_certificate(port: int, name: str, context: ssl.SSLContext) -> x509.Certificate:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=60) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


def test_on_demand_ask_and_rate_limit(tmp_path: Path):
    allowed = {"a.test", "b.test", "c.test"}
    http_port, https_port = free_port(), free_port()
    with (
        http_service(lambda q: (200 if q["domain"][0] in allowed else 403, b"")) as (ask, asked),
        running_challtestsrv(tmp_path / "dns") as dns,
        running_pebble(tmp_path / "pebble", http_port, https_port, dns_server=dns) as pebble,
    ):
        root = pebble.write_root(tmp_path / "root.pem")
        # TLS-ALPN-01: the CA's validation handshake must not wait for the order.
        issuer = pebble.issuer({"http": {"disabled": True}})
        tls = {
            "automation": {
                "policies": [{"on_demand": True, "issuers": [issuer]}],
                "on_demand": {"ask": ask, "rate_limit": {"interval": "1m", "burst": 2}},
            }
        }
        config = tls_config(https_port, http_port, tmp_path / "storage", tls_extra=tls)
        with running_server(config, tmp_path, [https_port, http_port]) as server:
            context = client_context(str(root))
            first = served_certificate(https_port, "a.test", context)
            assert (
                x509.DNSName("a.test")
                in first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            )
            assert asked == [{"domain": ["a.test"]}]
            # Served from memory now: no second ask, no second order.
            assert served_certificate(https_port, "a.test", context).serial_number == (
                first.serial_number
            )
            assert len(asked) == 1
            # The ask endpoint says no: no certificate, the handshake fails.
            with pytest.raises(ssl.SSLError):
                served_certificate(https_port, "denied.test", context)
            assert asked[-1] == {"domain": ["denied.test"]}
            served_certificate(https_port, "b.test", context)
            # burst 2 per minute: the third order is refused although ask allows it.
            with pytest.raises(ssl.SSLError):
                served_certificate(https_port, "c.test", context)
            assert asked[-1] == {"domain": ["c.test"]}
            log = server.log()
        assert log.count("ordered certificate for") == 2
        assert "rate limit" in log and "denied.test" in log
        # Restarted with burst 1: certificates in storage load at handshake (asked
        # again, as Caddy asks) without an order, so they do not use up the limit.
        tls["automation"]["on_demand"]["rate_limit"]["burst"] = 1
        with running_server(config, tmp_path, [https_port, http_port]) as server:
            served = served_certificate(https_port, "a.test", context)
            assert served.serial_number == first.serial_number
            served_certificate(https_port, "b.test", context)
            served_certificate(https_port, "c.test", context)
            assert asked[-3:] == [{"domain": [n]} for n in ("a.test", "b.test", "c.test")]
            assert server.log().count("ordered certificate for") == 1


def test_get_certificate_from_http_manager(tmp_path: Path):
    ca = TestCA("certificate service")
    chain, key, serial = ca.issue(["*.ext.test"])

    def answer(query: dict[str, list[str]]) -> tuple[int, bytes]:
        return (200, key + chain) if query["server_name"][0] == "a.ext.test" else (204, b"")

    https_port = free_port()
    with http_service(answer) as (url, seen):
        tls = {
            "automation": {
                "policies": [
                    {"subjects": ["*.ext.test"], "get_certificate": [{"via": "http", "url": url}]}
                ]
            }
        }
        config = tls_config(https_port, free_port(), tmp_path / "storage", tls_extra=tls)
        with running_server(config, tmp_path, [https_port]):
            ca_file = ca.write(tmp_path / "ca.pem")
            context = client_context(str(ca_file))
            assert served_certificate(https_port, "a.ext.test", context).serial_number == serial
            # 204: the manager has nothing, and there is no other certificate.
            with pytest.raises(ssl.SSLError):
                served_certificate(https_port, "b.ext.test", context)
            # Asked at every handshake, as Caddy does.
            served_certificate(https_port, "a.ext.test", context)
        assert [q["server_name"][0] for q in seen] == ["a.ext.test", "b.ext.test", "a.ext.test"]
        # What else Caddy's HTTPCertGetter tells the service about the ClientHello.
        assert "1302" in seen[0]["cipher_suites"][0].split(",")  # TLS_AES_256_GCM_SHA384
        assert "403" in seen[0]["signature_schemes"][0].split(",")  # ecdsa_secp256r1_sha256
        assert seen[0]["local_ip"] == ["127.0.0.1"]
