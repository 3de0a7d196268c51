"""TLS client helpers for tests: handshake facts and HTTPS requests with Python's ssl."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509


@dataclass
class Handshake:
    version: str
    alpn: str | None
    serial: int
    names: list[str]
    compression: str | None
    cipher: str


def client_context(cafile: str | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def handshake(
    port: int,
    server_name: str | None,
    context: ssl.SSLContext,
    host: str = "127.0.0.1",
) -> Handshake:
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = [str(v) for v in san.value.get_values_for_type(x509.DNSName)]
        except x509.ExtensionNotFound:
            names = []
        return Handshake(
            version=tls.version() or "",
            alpn=tls.selected_alpn_protocol(),
            serial=cert.serial_number,
            names=names,
            compression=tls.compression(),
            cipher=(tls.cipher() or ("",))[0],
        )


def https_get(
    port: int, server_name: str, context: ssl.SSLContext, path: str = "/"
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_with_sni(context, server_name), timeout=10
    )
    try:
        connection.request("GET", path, headers={"Host": server_name})
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


class _SNIContext(ssl.SSLContext):
    sni = ""

    def wrap_socket(self, sock, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        kwargs["server_hostname"] = self.sni
        return super().wrap_socket(sock, *args, **kwargs)


def _with_sni(context: ssl.SSLContext, server_name: str) -> ssl.SSLContext:
    """http.client connects to 127.0.0.1 but must send (and verify) ``server_name``."""
    wrapped = _SNIContext(ssl.PROTOCOL_TLS_CLIENT)
    wrapped.sni = server_name
    wrapped.check_hostname = context.check_hostname
    wrapped.verify_mode = context.verify_mode
    wrapped.load_verify_locations(cadata=_ca_data(context)) if context.verify_mode else None
    return wrapped


def _ca_data(context: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in context.get_ca_certs(binary_form=True))
