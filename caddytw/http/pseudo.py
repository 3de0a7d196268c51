"""HTTP/2 and HTTP/3 request pseudo-header fields -> the method, target and Host a
``twisted.web`` request is built from, with the checks HTTP/1.1's request line gets.

Both protocols carry the request line as ``:method``, ``:scheme``, ``:authority`` and
``:path`` (RFC 9113 section 8.3.1, RFC 9114 section 4.3.1). The libraries below us
(``h2``, aioquic) check their syntax; what a server must still decide is done here, once
for both protocols, so h2 and h3 answer alike:

* ``CONNECT`` has no ``:path`` or ``:scheme`` (RFC 9113 section 8.5): this server does not
  tunnel, so the stream gets a 405, never a crash of the whole connection;
* ``:path`` is origin-form (``/...``) or ``*`` for OPTIONS: an absolute-form ``:path``
  would override ``:authority`` through the HTTP/1.1 absolute-form rule, so it is refused;
* a space or control byte in ``:path`` is not a URI (RFC 3986): 400, as for HTTP/1.1;
* ``#`` in ``:path`` is data (a client never sends a fragment), so it becomes ``%23``, as
  Go escapes it when Caddy forwards the request: a deny rule on ``/secret`` cannot be
  passed with ``/secret#`` to an upstream that drops fragments;
* ``:authority`` wins over ``host``; when both are present they must agree (RFC 9114
  section 4.3.1; RFC 9113 section 8.3.1 says a server SHOULD treat a difference as
  malformed), and the value must be a valid host (``caddytw.http.request.valid_host``,
  Go's rule, which is what makes Caddy answer 400 for ``a b`` or ``evil.com/@good``).

A refusal is a :class:`BadRequest` carrying the status to answer on that stream alone.
"""

from __future__ import annotations

from typing import NamedTuple

from caddytw.http.request import valid_host

#: Bytes that cannot appear in a request target: controls, space and DEL.
_NOT_IN_TARGET = bytes(range(0x21)) + b"\x7f"


class BadRequest(Exception):
    """The request cannot be served; answer ``status`` on its stream (not the connection)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class RequestLine(NamedTuple):
    """What HTTP/1.1 would have said: method, request target, Host (None when absent)."""

    method: bytes
    target: bytes
    host: bytes | None


def request_line(
    pseudo: dict[bytes, bytes], host_headers: list[bytes], *, http3: bool = False
) -> RequestLine:
    """The request line of a stream from its pseudo-header fields and ``host`` fields.

    ``pseudo`` maps each pseudo-header name (with its colon) to its value; duplicates
    and unknown names were already refused by the protocol library.
    """
    method = pseudo.get(b":method", b"")
    if not method:
        raise BadRequest(400, "missing :method")
    authority = pseudo.get(b":authority")
    if len(host_headers) > 1:
        raise BadRequest(400, "more than one host field")
    host = host_headers[0] if host_headers else None
    if authority is not None and host is not None and host != authority:
        raise BadRequest(400, ":authority and host differ")
    if authority is None:
        authority = host
    if authority is not None and not valid_host(authority):
        raise BadRequest(400, "malformed :authority")
    if method == b"CONNECT":
        if not authority:
            raise BadRequest(400, "CONNECT without :authority")
        raise BadRequest(405, "CONNECT is not supported")
    path = pseudo.get(b":path", b"")
    if not pseudo.get(b":scheme"):
        raise BadRequest(400, "missing :scheme")
    if path == b"*":
        if method != b"OPTIONS":
            raise BadRequest(400, "asterisk-form :path outside OPTIONS")
    elif not path.startswith(b"/"):
        raise BadRequest(400, "the :path is not origin-form")
    if len(path.translate(None, _NOT_IN_TARGET)) != len(path):
        raise BadRequest(400, "space or control byte in :path")
    if http3 and authority is None:
        raise BadRequest(400, "missing :authority")
    return RequestLine(method, path.replace(b"#", b"%23"), authority)
