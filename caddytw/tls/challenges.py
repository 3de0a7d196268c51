"""ACME challenge answers waiting to be fetched by the CA.

The ACME client (in a thread) publishes here through the reactor; the HTTP-01 gate
and the TLS listeners read it on the reactor thread. Keeping it one small object makes
the hand-off explicit: nothing else is shared between the two sides.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from caddytw.http.routing import LeafResource

HTTP01_PREFIX = "/.well-known/acme-challenge/"

log = Logger()


class ChallengeRegistry:
    """Pending HTTP-01 key authorizations (by token) and TLS-ALPN-01 certificates (by name).

    ``http01``/``tls_alpn01`` are this node's own orders; ``remote_*`` are the ones other
    nodes sharing the storage published (replaced whole by
    :mod:`caddytw.tls.distributed` each time the storage says they changed), so this
    node answers the CA for an order another node started.
    """

    def __init__(self) -> None:
        self.http01: dict[str, str] = {}
        self.tls_alpn01: dict[str, tuple[Any, Any]] = {}
        self.remote_http01: dict[str, str] = {}
        self.remote_tls_alpn01: dict[str, tuple[Any, Any]] = {}

    def http01_answer(self, token: str) -> str | None:
        found = self.http01.get(token)
        return found if found is not None else self.remote_http01.get(token)

    def tls_alpn01_answer(self, name: str) -> tuple[Any, Any] | None:
        found = self.tls_alpn01.get(name)
        return found if found is not None else self.remote_tls_alpn01.get(name)

    def set_remote(self, http01: dict[str, str], tls_alpn01: dict[str, tuple[Any, Any]]) -> None:
        self.remote_http01 = http01
        self.remote_tls_alpn01 = tls_alpn01

    def add_http01(self, token: str, key_authorization: str) -> None:
        self.http01[token] = key_authorization
        log.info("serving http-01 challenge token {token}", token=token)

    def remove_http01(self, token: str) -> None:
        self.http01.pop(token, None)

    def add_tls_alpn01(self, name: str, certificate: Any, key: Any) -> None:
        """``certificate``/``key`` are pyOpenSSL ``X509``/``PKey`` objects."""
        self.tls_alpn01[name.lower()] = (certificate, key)
        log.info("serving tls-alpn-01 challenge for {name}", name=name)

    def remove_tls_alpn01(self, name: str) -> None:
        self.tls_alpn01.pop(name.lower(), None)


class HTTP01Gate(LeafResource):
    """Answers pending HTTP-01 challenges before any user route, as Caddy does.

    Every other request goes on to the server's own resource tree untouched. A server
    without TLS gets one in front of its root when its site is built
    (:class:`caddytw.http.site.CaddySite`); the challenge solvers' own ports too.
    """

    def __init__(self, registry: ChallengeRegistry, inner: Any) -> None:
        self.registry = registry
        self.inner = inner

    def render(self, request: Any) -> Any:
        path: str = getattr(request, "decoded_path", None) or request.path.decode("latin-1")
        if path.startswith(HTTP01_PREFIX) and request.method in (b"GET", b"HEAD"):
            answer = self.registry.http01_answer(path[len(HTTP01_PREFIX) :])
            if answer is not None:
                body = answer.encode("ascii")
                request.setResponseCode(200)
                request.setHeader(b"content-type", b"text/plain")
                request.setHeader(b"content-length", b"%d" % len(body))
                return body if request.method == b"GET" else b""
        return self.inner.render(request)
