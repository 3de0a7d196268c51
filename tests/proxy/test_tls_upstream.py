"""HTTPS upstreams: a private CA, ``server_name``, and ``insecure_skip_verify``."""

from __future__ import annotations

import subprocess

import pytest

from tests.proxy.harness import get, port_of, proxy, proxy_route, start_upstream


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a certificate for ``upstream.test`` signed by it (openssl CLI)."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Test CA",
        "-days",
        "2",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "up.key",
        "-out",
        "up.csr",
        "-subj",
        "/CN=upstream.test",
    )
    (d / "ext.cnf").write_text("subjectAltName=DNS:upstream.test\n")
    run(
        "x509",
        "-req",
        "-in",
        "up.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "up.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return d


@pytest.fixture(scope="module")
def tls_upstream(pki):
    upstream = start_upstream("secure", "tls", None, str(pki / "up.pem"), str(pki / "up.key"))
    yield upstream
    upstream.kill()


def tls_route(upstream, **tls):
    return proxy_route([upstream], transport={"protocol": "http", "tls": tls})


def test_private_ca_and_server_name(tmp_path, pki, tls_upstream):
    route = tls_route(
        tls_upstream, server_name="upstream.test", root_ca_pem_files=[str(pki / "ca.pem")]
    )
    with proxy(tmp_path, route) as server:
        reply = get(port_of(server), "/x")
        assert reply.status == 200 and reply.upstream == "secure"


def test_unverifiable_certificate_is_a_bad_gateway(tmp_path, pki, tls_upstream):
    with proxy(tmp_path, tls_route(tls_upstream, server_name="upstream.test")) as server:
        assert get(port_of(server)).status == 502
    wrong_name = tls_route(
        tls_upstream, server_name="other.test", root_ca_pem_files=[str(pki / "ca.pem")]
    )
    with proxy(tmp_path, wrong_name) as server:
        assert get(port_of(server)).status == 502


def test_insecure_skip_verify(tmp_path, tls_upstream):
    with proxy(tmp_path, tls_route(tls_upstream, insecure_skip_verify=True)) as server:
        assert get(port_of(server)).upstream == "secure"


def test_endless_head_from_a_tls_upstream_is_a_502(tmp_path, tls_upstream):
    """``max_response_header_size`` holds for TLS upstreams as for plain ones: 502 at
    the limit, the proxy's memory flat (Twisted's Agent, used for TLS before, read an
    endless head without a limit)."""
    route = tls_route(tls_upstream, insecure_skip_verify=True)
    route["transport"]["max_response_header_size"] = 256 * 1024
    with proxy(tmp_path, route) as server:
        port = port_of(server)
        assert get(port, "/huge-head").status == 502
        assert get(port, "/x").upstream == "secure"  # the proxy is fine
