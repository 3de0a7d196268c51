"""What a proxy does to headers on the way through: hop-by-hop removal, X-Forwarded-*.

Pure functions over ``twisted.web.http_headers.Headers`` so every rule is testable without IO.
"""

from __future__ import annotations

from twisted.web.http_headers import Headers

#: RFC 7230 section 6.1 connection-specific fields (Go's ``hopHeaders`` list).
HOP_BY_HOP: tuple[bytes, ...] = (
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
)


def connection_tokens(headers: Headers) -> list[bytes]:
    """The lowercased field names listed in every ``Connection`` header."""
    tokens: list[bytes] = []
    for value in headers.getRawHeaders(b"connection", []):
        tokens.extend(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def upgrade_type(headers: Headers) -> bytes | None:
    """The requested protocol of an Upgrade request (``Connection: upgrade`` + ``Upgrade``)."""
    if b"upgrade" not in connection_tokens(headers):
        return None
    values = headers.getRawHeaders(b"upgrade")
    return values[0].strip().lower() if values else None


_HOP_BY_HOP_SET = frozenset(HOP_BY_HOP)


def hop_by_hop_names(headers: Headers) -> frozenset[bytes]:
    """Lowercased names of the fields that must not cross the proxy."""
    tokens = connection_tokens(headers)
    return _HOP_BY_HOP_SET.union(tokens) if tokens else _HOP_BY_HOP_SET


def strip_hop_by_hop(headers: Headers, *, keep_te_trailers: bool = False) -> None:
    """Remove the fixed hop-by-hop fields and every field named in ``Connection``.

    ``TE: trailers`` survives on requests (as in Go's reverse proxy) because it states what
    the client itself accepts.
    """
    te_trailers = keep_te_trailers and any(
        b"trailers" in [t.strip().lower() for t in value.split(b",")]
        for value in headers.getRawHeaders(b"te", [])
    )
    # Host is the request's authority, not a field a client can declare hop-by-hop
    # (Go keeps it apart as ``Request.Host``): ``Connection: Host`` must not drop it.
    drop = hop_by_hop_names(headers) - {b"host"}
    # One pass over the fields present rather than a removal per listed name.
    for name in [n for n, _ in headers.getAllRawHeaders() if n.lower() in drop]:
        headers.removeHeader(name)
    if te_trailers:
        headers.setRawHeaders(b"te", [b"trailers"])


def set_forwarded(headers: Headers, *, peer: str, scheme: str, host: str, trusted: bool) -> None:
    """Set ``X-Forwarded-For/-Proto/-Host`` as Caddy does.

    From a trusted peer the prior values are kept (``For`` gets the peer appended);
    otherwise whatever the client sent is replaced, so it cannot spoof its address.
    """
    peer = peer.split("%", 1)[0]
    prior_for = b", ".join(headers.getRawHeaders(b"x-forwarded-for", []))
    if trusted and prior_for:
        headers.setRawHeaders(b"x-forwarded-for", [prior_for + b", " + peer.encode()])
    else:
        headers.setRawHeaders(b"x-forwarded-for", [peer.encode()])
    for name, own in ((b"x-forwarded-proto", scheme), (b"x-forwarded-host", host)):
        prior = headers.getRawHeaders(name, [])
        if trusted and prior and prior[-1]:
            headers.setRawHeaders(name, [prior[-1]])
        else:
            headers.setRawHeaders(name, [own.encode("latin-1")])


def merge_response_headers(
    client: Headers, upstream: Headers, drop: frozenset[bytes] = frozenset()
) -> None:
    """Copy the upstream's response fields onto the client response, leaving out the
    lowercased names in ``drop``.

    Fields are added, not replaced, so the server's own ``Server: Caddy`` stays first and
    the upstream's ``Server`` follows it, as Caddy answers; ``Date`` is the upstream's.
    """
    if upstream.hasHeader(b"date"):
        client.removeHeader(b"date")
    for name, values in upstream.getAllRawHeaders():
        if drop and name.lower() in drop:
            continue
        for value in values:
            client.addRawHeader(name, value)
