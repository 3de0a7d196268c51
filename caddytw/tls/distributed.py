"""Challenges shared through the storage, so any node answers for any node's order.

Behind a load balancer (or DNS with several addresses) the CA's validation request may
reach any node, not the one that placed the order. When the storage is shared
(:attr:`Storage.shared`, the ``postgres`` module), the node that orders also writes
each pending challenge into the storage (``challenge_tokens/...``), and every node
keeps a copy of all pending challenges in its :class:`ChallengeRegistry`'s ``remote_*``
maps, reloaded in a thread whenever the storage announces a change (PostgreSQL
``LISTEN``/``NOTIFY``).

HTTP-01 does not depend on that announcement arriving in time: a node asked for a
token it does not hold looks it up in the storage (:meth:`SharedChallenges.lookup_http01`,
in a thread, at most :data:`LOOKUP_TIMEOUT` seconds) before it answers 404. The
challenge is committed before the CA is told to validate, so every node finds it: the
ordering node tells the CA at once, with no wait.

TLS-ALPN-01 cannot do that: its answer is chosen inside the handshake's ALPN callback,
which runs on the reactor and cannot wait for a database. For it the ordering node
waits (:meth:`Storage.await_challenge`) until every other live node has acknowledged
the challenge, which a node does once its reactor holds the new maps
(:meth:`Storage.acknowledge_challenges`): no fixed delay, bounded by a timeout (see
:mod:`caddytw.tls.pgstore`).

The reactor only ever reads the in-memory maps; the storage is read and written in
threads only.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from OpenSSL import crypto
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import blockingCallFromThread, deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.tls.challenges import ChallengeRegistry
from caddytw.tls.store import HTTP01, TLS_ALPN01, Storage

if TYPE_CHECKING:
    from caddytw.tls.acme import ChallengePublisher

log = Logger()

#: Seconds an HTTP-01 request for an unknown token waits for the storage before 404
#: (well inside the CA's own timeout; a healthy database answers in milliseconds).
LOOKUP_TIMEOUT = 3.0
#: Storage lookups in flight at once; beyond that an unknown token is a 404 at once, so
#: a flood of made-up tokens cannot tie up the worker threads or the database.
MAX_LOOKUPS = 8
#: Seconds the listener thread waits for the reactor to take the new maps.
ACK_WAIT = 5.0


class SharedChallenges(Service):
    """Publishes this node's challenges to the storage and loads the other nodes'."""

    def __init__(self, storage: Storage, registry: ChallengeRegistry, reactor: Any) -> None:
        self.storage = storage
        self.registry = registry
        self.reactor = reactor
        self._stop_listening: Callable[[], None] | None = None
        self._lookups = 0

    # -- this node's orders (called in the ACME worker thread) -----------------------

    def publisher(self) -> ChallengePublisher:
        from caddytw.tls.acme import ChallengePublisher  # imported with the ACME issuer

        registry, storage = self.registry, self.storage

        def in_reactor(function: Callable[..., None], *args: Any) -> None:
            blockingCallFromThread(self.reactor, function, *args)

        def add_http01(token: str, key_authorization: str) -> None:
            in_reactor(registry.add_http01, token, key_authorization)
            if storage.shared:
                # Committed before the CA is told: a node that missed the
                # announcement finds it in the storage (lookup_http01), so no wait.
                storage.save_challenge(HTTP01, token, {"key_authorization": key_authorization})

        def remove_http01(token: str) -> None:
            in_reactor(registry.remove_http01, token)
            if storage.shared:
                self._withdraw(HTTP01, token)

        def add_tls_alpn01(name: str, certificate: Any, key: Any) -> None:
            in_reactor(registry.add_tls_alpn01, name, certificate, key)
            if storage.shared:
                pem = crypto.FILETYPE_PEM
                data = {
                    "certificate": crypto.dump_certificate(pem, certificate).decode(),
                    "key": crypto.dump_privatekey(pem, key).decode(),
                }
                storage.save_challenge(TLS_ALPN01, name, data)
                # The ALPN callback cannot wait for the database: every node must
                # hold the certificate in memory before the CA connects.
                storage.await_challenge(TLS_ALPN01, name)

        def remove_tls_alpn01(name: str) -> None:
            in_reactor(registry.remove_tls_alpn01, name)
            if storage.shared:
                self._withdraw(TLS_ALPN01, name)

        return ChallengePublisher(add_http01, remove_http01, add_tls_alpn01, remove_tls_alpn01)

    def _withdraw(self, kind: str, ident: str) -> None:
        try:
            self.storage.delete_challenge(kind, ident)
        except Exception as error:  # the order is over either way
            log.warn("could not withdraw {kind} challenge {i}: {e}", kind=kind, i=ident, e=error)

    # -- the other nodes' orders -----------------------------------------------------

    def startService(self) -> None:
        super().startService()
        listen = getattr(self.storage, "listen", None)
        if self.storage.shared and listen is not None:
            self._stop_listening = listen(self.reload)
        if self.storage.shared:
            self.registry.lookup_http01 = self.lookup_http01

    def stopService(self) -> Any:
        if self.registry.lookup_http01 == self.lookup_http01:
            self.registry.lookup_http01 = None
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        return super().stopService()

    def reload(self) -> None:
        """Read every pending challenge (in the listener's thread) and hand the new maps
        to the reactor."""
        found = self.storage.load_challenges()
        http01 = {
            token: str(data["key_authorization"])
            for token, data in found[HTTP01].items()
            if "key_authorization" in data
        }
        alpn: dict[str, tuple[Any, Any]] = {}
        for name, data in found[TLS_ALPN01].items():
            with contextlib.suppress(KeyError, crypto.Error):
                alpn[name] = (
                    crypto.load_certificate(crypto.FILETYPE_PEM, data["certificate"].encode()),
                    crypto.load_privatekey(crypto.FILETYPE_PEM, data["key"].encode()),
                )
        if http01 or alpn:
            log.info(
                "pending challenges from the shared storage: {n} http-01, {m} tls-alpn-01",
                n=len(http01),
                m=len(alpn),
            )
        installed = threading.Event()

        def install() -> None:
            self.registry.set_remote(http01, alpn)
            installed.set()

        self.reactor.callFromThread(install)
        # Acknowledged only once the reactor answers with them (an ordering node waits
        # for that before it asks the CA); a reactor that is not running says nothing.
        if installed.wait(ACK_WAIT):
            self.storage.acknowledge_challenges(found)

    def lookup_http01(self, token: str) -> Deferred[str | None]:
        """The key authorization stored for ``token``, read in a worker thread; None when
        absent, when the storage fails or is slower than :data:`LOOKUP_TIMEOUT`, or when
        :data:`MAX_LOOKUPS` are already in flight (called on the reactor)."""
        if self._lookups >= MAX_LOOKUPS:
            return succeed(None)
        self._lookups += 1
        pool = self.reactor.getThreadPool()
        found: Deferred[str | None] = deferToThreadPool(
            self.reactor, pool, self._load_http01, token
        )
        found.addTimeout(LOOKUP_TIMEOUT, self.reactor)

        def failed(failure: Failure) -> None:
            log.warn(
                "could not look up http-01 token {token} in the storage: {e}",
                token=token,
                e=failure.getErrorMessage() or repr(failure.value),
            )

        def done(result: str | None) -> str | None:
            self._lookups -= 1
            return result

        found.addErrback(failed)
        found.addBoth(done)
        return found

    def _load_http01(self, token: str) -> str | None:
        raw = self.storage.load(self.storage.challenge_key(HTTP01, token))
        if raw is None:
            return None
        with contextlib.suppress(ValueError):
            data = json.loads(raw)
            if isinstance(data, dict) and isinstance(data.get("key_authorization"), str):
                log.info("answering http-01 token {token} from the storage", token=token)
                return str(data["key_authorization"])
        return None
