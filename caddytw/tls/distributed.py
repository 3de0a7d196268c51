"""Challenges shared through the storage, so any node answers for any node's order.

Behind a load balancer (or DNS with several addresses) the CA's validation request may
reach any node, not the one that placed the order. When the storage is shared
(:attr:`Storage.shared`, the ``postgres`` module), the node that orders also writes
each pending challenge into the storage (``challenge_tokens/...``), and every node
keeps a copy of all pending challenges in its :class:`ChallengeRegistry`'s ``remote_*``
maps, reloaded in a thread whenever the storage announces a change (PostgreSQL
``LISTEN``/``NOTIFY``). The ordering node waits :attr:`Storage.propagation_delay`
before telling the CA to validate, so the others have the answer by then.

The reactor only ever reads the in-memory maps (a TLS-ALPN-01 answer is chosen inside
the handshake's ALPN callback, which cannot wait for a database): the storage is read
and written in threads only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from OpenSSL import crypto
from twisted.application.service import Service
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger

from caddytw.tls.acme import ChallengePublisher
from caddytw.tls.challenges import ChallengeRegistry
from caddytw.tls.store import HTTP01, TLS_ALPN01, Storage

log = Logger()


class SharedChallenges(Service):
    """Publishes this node's challenges to the storage and loads the other nodes'."""

    def __init__(self, storage: Storage, registry: ChallengeRegistry, reactor: Any) -> None:
        self.storage = storage
        self.registry = registry
        self.reactor = reactor
        self._stop_listening: Callable[[], None] | None = None

    # -- this node's orders (called in the ACME worker thread) -----------------------

    def publisher(self) -> ChallengePublisher:
        registry, storage = self.registry, self.storage

        def in_reactor(function: Callable[..., None], *args: Any) -> None:
            blockingCallFromThread(self.reactor, function, *args)

        def add_http01(token: str, key_authorization: str) -> None:
            in_reactor(registry.add_http01, token, key_authorization)
            if storage.shared:
                storage.save_challenge(HTTP01, token, {"key_authorization": key_authorization})
                time.sleep(storage.propagation_delay)

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
                time.sleep(storage.propagation_delay)

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

    def stopService(self) -> Any:
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
        self.reactor.callFromThread(self.registry.set_remote, http01, alpn)
