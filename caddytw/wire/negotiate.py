"""Which protocol a connection speaks, decided in one place, once per connection.

- During a TLS handshake, :func:`select_alpn` picks the ALPN protocol
  (:mod:`caddytw.tls.context` calls it): ``acme-tls/1`` when the client asks for it
  and a TLS-ALPN-01 challenge is pending for the name, else the server's most
  preferred protocol the client offers (:func:`alpn_for`).
- On the connection's first bytes, :func:`choose` says what the connection carries
  (:class:`caddytw.wire.h1.FastHTTPChannel` asks it, then hands the bytes on):
  nothing (``acme-tls/1``: the handshake was the whole exchange), HTTP/2 (ALPN ``h2``,
  or the cleartext preface when the server allows h2c), or HTTP/1.1. An HTTP/1.1
  ``Upgrade: h2c`` request is served as HTTP/1.1, as Caddy 2.6 serves it.
"""

from __future__ import annotations

import enum
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


def select_alpn(
    offered: Sequence[bytes], client: Sequence[bytes], acme_pending: bool
) -> bytes | None:
    """The ALPN protocol for a handshake; None when client and server share none.

    ``acme_pending``: a TLS-ALPN-01 challenge waits for the name the client asked for
    (only looked at when the client offers ``acme-tls/1``).
    """
    if acme_pending and ACME_TLS_ALPN in client:
        return ACME_TLS_ALPN
    for protocol in offered:
        if protocol in client:
            return protocol
    return None


class Carried(enum.Enum):
    """What a connection carries, decided from its ALPN and first bytes."""

    HTTP1 = "http/1.1"
    H2 = "h2"
    NOTHING = "none"  # close it: acme-tls/1
    UNDECIDED = "wait"  # a prefix of the h2c preface: wait for more bytes


def looks_first(secure: bool, allow_h2c: bool) -> bool:
    """Whether the first bytes must go through :func:`choose` (else it is HTTP/1.1)."""
    return secure or allow_h2c


def choose(alpn: bytes | None, secure: bool, allow_h2c: bool, received: bytes) -> Carried:
    """What a connection carries, from its negotiated ALPN (None without TLS or when
    none was agreed) and everything received so far."""
    if alpn in NON_HTTP_ALPN:
        return Carried.NOTHING
    if alpn == b"h2":
        return Carried.H2
    if allow_h2c and not secure:
        if len(received) < len(H2_PREFACE) and H2_PREFACE.startswith(received):
            return Carried.UNDECIDED
        if received.startswith(H2_PREFACE):
            return Carried.H2
    return Carried.HTTP1
