"""TLS listeners with ``load_files``: SNI, protocol floor, ciphers, reload from disk."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.client import client_context, handshake, https_get
from tests.tls.conftest import tls_config
from tests.tls.pki import TestCA


@pytest.fixture
def sni_server(tmp_path: Path, ca: TestCA):
    """A server loading three certificates: a.test, b.test and *.wild.test."""
    files = []
    serials = {}
    for stem, names in (("a", ["a.test"]), ("b", ["b.test"]), ("w", ["*.wild.test"])):
        cert, key, serial = ca.write_leaf(tmp_path, stem, names)
        files.append({"certificate": str(cert), "key": str(key), "tags": [stem]})
        serials[stem] = serial
    port = free_port()
    config = tls_config(
        port,
        free_port(),
        tmp_path / "storage",
        load_files=files,
        policies=[{"match": {"sni": ["b.test"]}, "protocol_min": "tls1.3"}, {}],
    )
    cafile = str(ca.write(tmp_path / "ca.pem"))
    with running_server(config, tmp_path, [port]) as server:
        yield server, port, cafile, serials, tmp_path


def test_sni_chooses_among_certificates(sni_server):
    _, port, cafile, serials, _ = sni_server
    context = client_context(cafile)
    assert handshake(port, "a.test", context).serial == serials["a"]
    assert handshake(port, "b.test", context).serial == serials["b"]
    wild = handshake(port, "x.wild.test", context)
    assert wild.serial == serials["w"]
    assert wild.names == ["*.wild.test"]
    status, body, headers = https_get(port, "a.test", context, "/hello")
    assert status == 200
    assert body == b"a.test HTTP/1.1 https"
    assert headers["server"] == "Caddy"


def test_unknown_name_is_refused(sni_server):
    _, port, cafile, _, _ = sni_server
    with pytest.raises(ssl.SSLError):
        handshake(port, "nobody.test", client_context(cafile))
    # A wildcard covers one label only.
    with pytest.raises(ssl.SSLError):
        handshake(port, "a.b.wild.test", client_context(cafile))


def test_protocol_floor_and_modern_defaults(sni_server):
    _, port, cafile, _, _ = sni_server
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        old = client_context(cafile)
        old.set_ciphers("ALL:@SECLEVEL=0")
        old.minimum_version = version
        old.maximum_version = version
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(port, "a.test", old)
    tls12 = client_context(cafile)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    result = handshake(port, "a.test", tls12)
    assert result.version == "TLSv1.2"
    assert result.compression is None
    assert "GCM" in result.cipher or "CHACHA20" in result.cipher
    assert handshake(port, "a.test", client_context(cafile)).version == "TLSv1.3"
    # The b.test policy raises the floor to TLS 1.3: the same TLS 1.2 client is refused.
    with pytest.raises(ssl.SSLError):
        handshake(port, "b.test", tls12)


def test_weak_ciphers_refused(sni_server):
    _, port, cafile, _, _ = sni_server
    for ciphers in ("AES128-SHA:AES256-SHA", "ECDHE-ECDSA-AES128-SHA", "3DES:RC4:NULL:@SECLEVEL=0"):
        weak = client_context(cafile)
        weak.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            weak.set_ciphers(ciphers)
        except ssl.SSLError:
            continue  # the local OpenSSL does not even offer them
        with pytest.raises(ssl.SSLError):
            handshake(port, "a.test", weak)


def test_session_resumption(sni_server):
    _, port, cafile, _, _ = sni_server
    import socket

    context = client_context(cafile)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="a.test") as tls,
    ):
        session = tls.session
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="a.test", session=session) as tls,
    ):
        assert tls.session_reused


def test_certificate_replaced_on_disk(sni_server, ca: TestCA):
    server, port, cafile, serials, tmp_path = sni_server
    context = client_context(cafile)
    assert handshake(port, "a.test", context).serial == serials["a"]
    chain, key, new_serial = ca.issue(["a.test"])
    # Replace both files atomically (key first), as certificate tooling does.
    for name, data in (("a.key", key), ("a.crt", chain)):
        temp = tmp_path / f".{name}.new"
        temp.write_bytes(data)
        os.replace(temp, tmp_path / name)
    deadline = time.monotonic() + 10
    while handshake(port, "a.test", context).serial != new_serial:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)
    assert handshake(port, "b.test", context).serial == serials["b"]
