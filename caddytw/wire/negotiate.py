"""Which protocol a connection speaks, in one place: the ALPN names a TLS listener
offers, the one that carries no HTTP (``acme-tls/1``, TLS-ALPN-01 validation), and the
cleartext HTTP/2 preface (h2c). :meth:`caddytw.wire.h1.FastHTTPChannel._first_data`
decides once per connection from these; :mod:`caddytw.tls.context` offers and selects
them during the handshake.
"""

from __future__ import annotations

from collections.abc import Sequence

#: TLS-ALPN-01 (RFC 8737): the handshake is the whole exchange; no HTTP follows.
ACME_TLS_ALPN = b"acme-tls/1"
#: ALPN protocols whose connections carry no HTTP.
NON_HTTP_ALPN = (ACME_TLS_ALPN,)
#: The HTTP/2 connection preface: a cleartext connection starting with it is h2c.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def alpn_for(protocols: Sequence[str], policy_alpn: Sequence[str] = ()) -> list[bytes]:
    """ALPN names to offer, most preferred first (``h2`` before ``http/1.1``)."""
    if policy_alpn:
        return [p.encode("ascii") for p in policy_alpn]
    offered = []
    if "h2" in protocols:
        offered.append(b"h2")
    if "h1" in protocols:
        offered.append(b"http/1.1")
    return offered
