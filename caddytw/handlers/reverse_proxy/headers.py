"""What a proxy does to headers on the way through: hop-by-hop removal, X-Forwarded-*.

Pure functions over ``twisted.web.http_headers.Headers`` so every rule is testable without IO.

On the proxy's hot path they work on the ``Headers``' dict (``_rawHeaders``: names in
twisted's canonical spelling, values already free of line breaks) where the public
methods would re-canonicalise every name and re-sanitise every value of a field that is
only being moved from one ``Headers`` to another.
"""

from __future__ import annotations

from twisted.web.http_headers import Headers, InvalidHeaderName, _nameEncoder

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


#: The same names as ``Headers`` keys them (e.g. ``TE``, ``Keep-Alive``).
_HOP_BY_HOP_KEYS = frozenset(_nameEncoder.encode(name) for name in HOP_BY_HOP)
#: twisted's own cache of canonical names (the names a peer sends are few): one dict
#: lookup per field instead of a call through ``_nameEncoder.encode``.
_CANONICAL: dict[bytes | str, bytes] = getattr(_nameEncoder, "_canonicalHeaderCache", {})
_FORWARDED_FOR = b"X-Forwarded-For"
_FORWARDED_PROTO = b"X-Forwarded-Proto"
_FORWARDED_HOST = b"X-Forwarded-Host"
#: What never goes upstream as the client sent it: the forwarded fields are set anew
#: and Content-Length is the upstream request's own framing.
_REPLACED_KEYS = frozenset({_FORWARDED_FOR, _FORWARDED_PROTO, _FORWARDED_HOST, b"Content-Length"})


def canonical_key(name: bytes) -> bytes | None:
    """``name`` as ``Headers`` keys it (None for what is no valid field name)."""
    key = _CANONICAL.get(name)
    if key is not None:
        return key
    try:
        return _nameEncoder.encode(name)
    except InvalidHeaderName:
        return None


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
    canonical = _CANONICAL.get
    for name, value in fields:
        if 10 in value or 13 in value:  # LF, CR: a byte test is 15 times ``b"\n" in``
            value = b" ".join(value.splitlines())
        key = canonical(name) or _nameEncoder.encode(name)
        values = raw.get(key)
        if values is None:
            raw[key] = [value]
        else:
            values.append(value)


def hop_by_hop_keys(raw: dict[bytes, list[bytes]]) -> frozenset[bytes]:
    """The keys of a ``Headers``' dict whose fields must not cross the proxy: the
    fixed hop-by-hop ones and the ones ``Connection`` lists; the fixed set itself when
    ``Connection`` lists nothing else."""
    listed = raw.get(b"Connection")
    if not listed:
        return _HOP_BY_HOP_KEYS
    if len(listed) == 1:  # ``keep-alive``, ``close``, ``Upgrade``: a handful of values
        known = _KEYS_BY_CONNECTION.get(listed[0])
        if known is not None:
            return known
    extra = set()
    for value in listed:
        for token in value.split(b","):
            key = canonical_key(token.strip())
            if key is not None and key not in _HOP_BY_HOP_KEYS:
                extra.add(key)
    keys = _HOP_BY_HOP_KEYS.union(extra) if extra else _HOP_BY_HOP_KEYS
    if len(listed) == 1 and len(_KEYS_BY_CONNECTION) < 64:
        _KEYS_BY_CONNECTION[listed[0]] = keys
    return keys


#: :func:`hop_by_hop_keys` of a single ``Connection`` value, for the first few seen.
_KEYS_BY_CONNECTION: dict[bytes, frozenset[bytes]] = {}


def _te_trailers(raw: dict[bytes, list[bytes]]) -> bool:
    """Does the client's ``TE`` accept trailers (which survives on requests, as in
    Go's reverse proxy: it states what the client itself accepts)?"""
    return any(
        b"trailers" in [t.strip().lower() for t in value.split(b",")]
        for value in raw.get(b"TE", ())
    )


#: Never hop-by-hop on a request: ``Host`` is its authority, which Go keeps apart as
#: ``Request.Host``, so ``Connection: Host`` cannot drop it.
_HOST = frozenset({b"Host"})


def strip_hop_by_hop(headers: Headers, *, keep_te_trailers: bool = False) -> None:
    """Remove the fixed hop-by-hop fields and every field named in ``Connection``
    (``TE: trailers`` survives on requests with ``keep_te_trailers``)."""
    raw = headers._rawHeaders
    if raw.keys().isdisjoint(_HOP_BY_HOP_KEYS):
        return  # no Connection (so nothing it lists) and no fixed hop-by-hop field
    te_trailers = keep_te_trailers and _te_trailers(raw)
    drop = hop_by_hop_keys(raw) - _HOST
    for key in [key for key in raw if key in drop]:
        del raw[key]
    if te_trailers:
        raw[b"TE"] = [b"trailers"]


def forward_fields(
    raw: dict[bytes, list[bytes]], *, peer: bytes, scheme: bytes, trusted: bool
) -> dict[bytes, list[bytes]]:
    """A request's fields (a ``Headers``' dict) as the upstream gets them, in a new
    dict with lists of its own: hop-by-hop fields and ``Content-Length`` left out,
    ``X-Forwarded-For/-Proto/-Host`` as Caddy sets them.

    From a trusted peer the prior forwarded values are kept (``For`` gets the peer
    appended); otherwise whatever the client sent is replaced, so it cannot spoof its
    address. ``Host`` is the last ``X-Forwarded-Host`` of no trusted hop: the request's.
    """
    hop = frozenset() if raw.keys().isdisjoint(_HOP_BY_HOP_KEYS) else hop_by_hop_keys(raw) - _HOST
    drop = _REPLACED_KEYS | hop if hop else _REPLACED_KEYS
    fields = {key: list(values) for key, values in raw.items() if key not in drop}
    if hop and _te_trailers(raw):
        fields[b"TE"] = [b"trailers"]
    # A forwarded field the client declared hop-by-hop is not a prior hop's value.
    prior_for = b", ".join(raw.get(_FORWARDED_FOR, ())) if trusted else b""
    if prior_for and _FORWARDED_FOR not in hop:
        fields[_FORWARDED_FOR] = [prior_for + b", " + peer]
    else:
        fields[_FORWARDED_FOR] = [peer]
    host = raw.get(b"Host")
    for key, own in ((_FORWARDED_PROTO, scheme), (_FORWARDED_HOST, host[-1] if host else b"")):
        prior = raw.get(key) if trusted and key not in hop else None
        fields[key] = [prior[-1] if prior and prior[-1] else own]
    return fields


def merge_response_headers(
    client: Headers, upstream: Headers, drop: frozenset[bytes] = frozenset()
) -> None:
    """Copy the upstream's response fields onto the client response, leaving out the
    fields keyed in ``drop`` (keys as ``Headers`` has them, see
    :func:`hop_by_hop_keys`).

    Fields are added, not replaced, so the server's own ``Server: Caddy`` stays first and
    the upstream's ``Server`` follows it, as Caddy answers; ``Date`` is the upstream's.
    """
    # Names and values of a ``Headers`` are already canonical and sanitised.
    raw = client._rawHeaders
    fields = upstream._rawHeaders
    if b"Date" in fields:
        raw.pop(b"Date", None)
    for name, values in fields.items():
        if name in drop:
            continue
        present = raw.get(name)
        if present is None:
            raw[name] = list(values)
        else:
            present.extend(values)
