"""ACME challenge answers waiting to be fetched by the CA.

The ACME client (in a thread) publishes here through the reactor; the HTTP-01 gate
and the TLS listeners read it on the reactor thread. Keeping it one small object makes
the hand-off explicit: nothing else is shared between the two sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.http.request import NOT_DONE_YET
from caddytw.http.routing import LeafResource
from caddytw.tls.store import TOKEN

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
        #: Set while the storage is shared: looks a token up in the storage (in a
        #: thread, bounded in time; fires None when absent or unreachable), for the
        #: challenges whose announcement this node missed.
        self.lookup_http01: Callable[[str], Deferred[str | None]] | None = None

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
            token = path[len(HTTP01_PREFIX) :]
            answer = self.registry.http01_answer(token)
            if answer is not None:
                return self._answer(request, answer)
            lookup = self.registry.lookup_http01
            if lookup is not None and TOKEN.fullmatch(token):
                # Not announced to this node (yet): the storage has the last word
                # before a 404, since the CA may ask any node sharing it.
                lookup(token).addCallback(self._looked_up, request)
                return NOT_DONE_YET
        return self.inner.render(request)

    @staticmethod
    def _answer(request: Any, answer: str) -> bytes:
        body = answer.encode("ascii")
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"content-length", b"%d" % len(body))
        return body if request.method == b"GET" else b""

    def _looked_up(self, answer: str | None, request: Any) -> None:
        if getattr(request, "client_gone", False) or request.finished:
            return
        try:
            request.render(_LookedUp(self, answer))
        except Exception:
            request.processingFailed(Failure())


class _LookedUp(LeafResource):
    """The gate's answer once the storage was asked (rendered by ``request.render``,
    which handles HEAD and a deferred inner answer as for any resource)."""

    def __init__(self, gate: HTTP01Gate, answer: str | None) -> None:
        self.gate = gate
        self.answer = answer

    def render(self, request: Any) -> Any:
        if self.answer is not None:
            return self.gate._answer(request, self.answer)
        return self.gate.inner.render(request)
