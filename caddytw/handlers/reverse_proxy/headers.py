"""What a proxy does to headers on the way through: hop-by-hop removal, X-Forwarded-*.

Pure functions over ``twisted.web.http_headers.Headers`` so every rule is testable without IO.

On the proxy's hot path they work on the ``Headers``' dict (``_rawHeaders``: names in
twisted's canonical spelling, values already free of line breaks) where the public
methods would re-canonicalise every name and re-sanitise every value of a field that is
only being moved from one ``Headers`` to another.
"""

from __future__ import annotations

from twisted.web.http_headers import Headers, _nameEncoder

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
#: The same names as ``Headers`` keys them (e.g. ``TE``, ``Keep-Alive``).
_HOP_BY_HOP_KEYS = frozenset(_nameEncoder.encode(name) for name in HOP_BY_HOP)


def copy_headers(headers: Headers) -> Headers:
    """An independent copy of ``headers``: what ``Headers.copy`` returns, without
    running every name and value through ``setRawHeaders`` again."""
    copy = Headers()
    copy._rawHeaders = {name: list(values) for name, values in headers._rawHeaders.items()}
    return copy


def add_raw_fields(headers: Headers, fields: list[tuple[bytes, bytes]]) -> None:
    """Append parsed ``(name, value)`` fields (names as received), as ``addRawHeader``
    would: canonical names, line breaks in values folded to spaces."""
    raw = headers._rawHeaders
    encode = _nameEncoder.encode
    for name, value in fields:
        if b"\n" in value or b"\r" in value:
            value = b" ".join(value.splitlines())
        key = encode(name)
        values = raw.get(key)
        if values is None:
            raw[key] = [value]
        else:
            values.append(value)


def hop_by_hop_names(headers: Headers) -> frozenset[bytes]:
    """Lowercased names of the fields that must not cross the proxy."""
    tokens = connection_tokens(headers)
    return _HOP_BY_HOP_SET.union(tokens) if tokens else _HOP_BY_HOP_SET


def strip_hop_by_hop(headers: Headers, *, keep_te_trailers: bool = False) -> None:
    """Remove the fixed hop-by-hop fields and every field named in ``Connection``.

    ``TE: trailers`` survives on requests (as in Go's reverse proxy) because it states what
    the client itself accepts.
    """
    if headers._rawHeaders.keys().isdisjoint(_HOP_BY_HOP_KEYS):
        return  # no Connection (so nothing it lists) and no fixed hop-by-hop field
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
    # Names and values of a ``Headers`` are already canonical and sanitised.
    raw = client._rawHeaders
    for name, values in upstream._rawHeaders.items():
        if drop and name.lower() in drop:
            continue
        present = raw.get(name)
        if present is None:
            raw[name] = list(values)
        else:
            present.extend(values)
