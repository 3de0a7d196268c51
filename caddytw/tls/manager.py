"""Keeps managed certificates present and fresh: load from storage, obtain, renew, retry.

At start every managed name is loaded from storage (so a restart serves at once and
orders nothing when the stored certificate is still good). Names without a usable
certificate, and certificates with less than ``renewal_window_ratio`` of their lifetime
left, are (re)issued in a worker thread, under a storage lock so two processes sharing
the storage do not both order the same name: the second one finds the first one's
certificate once it holds the lock. Failures are retried with exponential backoff.
Every ``renew_interval`` the certificates in use are checked again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.tls.automation import ManagedName
from caddytw.tls.certs import Certificate, CertificateError, CertificateSelector
from caddytw.tls.config import IssuerConfig
from caddytw.tls.keys import key_to_pem, new_private_key
from caddytw.tls.store import LockLost, Storage, StoredCertificate

log = Logger()

RETRY_FIRST = 2.0
RETRY_MAX = 3600.0


class CertificateManager(Service):
    """Obtains and renews the certificates of ``names`` into ``selector``.

    ``make_issuer(config)`` returns an object with ``name`` (its storage folder) and a
    blocking ``issue(name, key_pem) -> chain_pem``.
    """

    def __init__(
        self,
        names: dict[str, ManagedName],
        storage: Storage,
        selector: CertificateSelector,
        make_issuer: Callable[[IssuerConfig], Any],
        reactor: Any,
        renew_interval: float,
    ) -> None:
        self.names = names
        self.storage = storage
        self.selector = selector
        self.make_issuer = make_issuer
        self.reactor = reactor
        self.renew_interval = renew_interval
        self.in_flight: dict[str, Deferred[Any]] = {}
        self.failures: dict[str, int] = {}
        self._retries: dict[str, Any] = {}
        self._loop: LoopingCall | None = None
        self.issued = 0  # orders completed by this process (visible to tests and logs)
        self.on_demand: set[str] = set()  # names added at handshake: no background retry

    # -- lifecycle -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if not self.names:
            return
        if not self.storage.shared:
            # Local files: read them now, so the first handshake already has them.
            self._serve_stored(self._read_stored())
            self._start_checks()
            return
        # A database is never waited for on the reactor thread: read in a worker, serve
        # what was found, then start checking (which orders what is still missing).
        pool = self.reactor.getThreadPool()
        d = deferToThreadPool(self.reactor, pool, self._read_stored)
        d.addCallback(self._serve_stored)
        d.addErrback(self._unreadable)
        d.addCallback(lambda _: self._start_checks())

    def _start_checks(self) -> None:
        if not self.running:
            return
        self._loop = LoopingCall(self.check_all)
        self._loop.clock = self.reactor
        self._loop.start(self.renew_interval, now=True)

    def _unreadable(self, failure: Failure) -> None:
        log.error(
            "could not read certificates from storage {storage}: {error} (checks retry)",
            storage=self.storage.describe(),
            error=failure.getErrorMessage(),
        )

    def stopService(self) -> Any:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for call in self._retries.values():
            if call.active():
                call.cancel()
        self._retries.clear()
        return super().stopService()

    # -- checks ----------------------------------------------------------------------

    def check_all(self) -> None:
        for name in self.names:
            self.check(name)

    def check(self, name: str) -> Deferred[Any] | None:
        """Start an order for ``name`` when it has no certificate or needs renewal."""
        if name in self.in_flight or name in self._retries:
            return self.in_flight.get(name)
        managed = self.names[name]
        current = self.selector.managed(name)
        if current is not None and not current.needs_renewal(managed.policy.renewal_window_ratio):
            return None
        return self.obtain(name)

    def manage_on_demand(
        self, managed: ManagedName, stored: Certificate | None = None
    ) -> Deferred[Any]:
        """Serve ``stored`` (what :meth:`stored_certificate` found), or order the name
        now; renew it from then on.

        Fires (with None) once the name has a certificate or the order failed; a failed
        on-demand order is not retried in the background (the next handshake asks).
        """
        self.names[managed.name] = managed
        self.on_demand.add(managed.name)
        if stored is not None:
            self.selector.put(managed.name, stored)
        if self._loop is None and self.running:
            self._loop = LoopingCall(self.check_all)
            self._loop.clock = self.reactor
            self._loop.start(self.renew_interval, now=False)
        started = self.check(managed.name)
        done: Deferred[Any] = Deferred()

        def finished(result: Any) -> Any:
            done.callback(None)
            return result

        if started is None:
            done.callback(None)
        else:
            started.addBoth(finished)
        return done

    def obtain(self, name: str) -> Deferred[Any]:
        managed = self.names[name]
        log.info("obtaining certificate for {name}", name=name)
        pool = self.reactor.getThreadPool()
        d = deferToThreadPool(self.reactor, pool, self._obtain_blocking, managed)
        self.in_flight[name] = d
        d.addCallbacks(self._obtained, self._failed, errbackArgs=(name,))
        d.addBoth(self._done, name)
        return d

    # -- in the worker thread --------------------------------------------------------

    def _obtain_blocking(self, managed: ManagedName) -> tuple[str, Certificate, str]:
        errors: list[str] = []
        for issuer_config in managed.issuers:
            issuer = self.make_issuer(issuer_config)
            # A second round only after a lost lock: it waits for the node that took
            # the lock over and, normally, serves what that node ordered.
            for _round in range(2):
                try:
                    return self._obtain_locked(managed, issuer)
                except LockLost as error:
                    log.warn(
                        "discarding the certificate ordered for {name}: {e}; "
                        "using the one the new lock holder stores",
                        name=managed.name,
                        e=error,
                    )
                    errors.append(f"{issuer.name}: {error}")
                except Exception as error:
                    errors.append(f"{issuer.name}: {error}")
                    break
        raise RuntimeError("; ".join(errors) or "no issuer")

    def _obtain_locked(self, managed: ManagedName, issuer: Any) -> tuple[str, Certificate, str]:
        """Under the name's lock: what storage has if usable, else order and save with
        the lock's fence (:class:`LockLost` if the lock was lost meanwhile)."""
        with self.storage.lock(f"issue_cert_{managed.name}") as fence:
            stored = self.storage.load_certificate(issuer.name, managed.name)
            fresh = self._usable(stored, managed)
            if fresh is not None:
                return managed.name, fresh, ""  # another process (or a past run) did it
            key_pem = key_to_pem(new_private_key(managed.policy.key_type))
            chain = issuer.issue(managed.name, key_pem)
            meta = {
                "sans": [managed.name],
                "issuer_data": {"issuer": issuer.name},
                "obtained": datetime.now(UTC).isoformat(),
            }
            saved = self.storage.save_certificate(
                issuer.name, managed.name, chain, key_pem, meta, fence=fence
            )
            return managed.name, self._certificate(saved), issuer.name

    def _usable(self, stored: StoredCertificate | None, managed: ManagedName) -> Certificate | None:
        if stored is None:
            return None
        try:
            certificate = self._certificate(stored)
        except CertificateError:
            return None
        if managed.name not in certificate.names:
            return None
        if certificate.needs_renewal(managed.policy.renewal_window_ratio):
            return None
        if certificate.not_after <= datetime.now(UTC):
            return None
        return certificate

    @staticmethod
    def _certificate(stored: StoredCertificate) -> Certificate:
        return Certificate.from_pem(
            stored.chain_pem,
            stored.key_pem,
            cert_path=stored.cert_path,
            key_path=stored.key_path,
            managed=True,
        )

    # -- back in the reactor ---------------------------------------------------------

    def _read_stored(self) -> list[tuple[ManagedName, StoredCertificate]]:
        """Every stored certificate of a managed name (blocking: storage reads)."""
        found = []
        for managed in self.names.values():
            for issuer_config in managed.issuers:
                stored = self.storage.load_certificate(issuer_config.storage_name, managed.name)
                if stored is not None:
                    found.append((managed, stored))
        return found

    def _serve_stored(self, found: list[tuple[ManagedName, StoredCertificate]]) -> None:
        """Serve what storage has (even if due for renewal: better than nothing); the
        first usable certificate per name, in issuer order."""
        served: set[str] = set()
        for managed, stored in found:
            if managed.name in served:
                continue
            certificate = self._unexpired(managed, stored)
            if certificate is not None:
                served.add(managed.name)
                self.selector.put(managed.name, certificate)
                log.info("loaded certificate for {name} from storage", name=managed.name)

    def stored_certificate(self, managed: ManagedName) -> Certificate | None:
        """An unexpired certificate for the name from storage (reads storage: the
        on-demand path calls it in a thread)."""
        for issuer_config in managed.issuers:
            stored = self.storage.load_certificate(issuer_config.storage_name, managed.name)
            certificate = None if stored is None else self._unexpired(managed, stored)
            if certificate is not None:
                return certificate
        return None

    def _unexpired(self, managed: ManagedName, stored: StoredCertificate) -> Certificate | None:
        """``stored`` as a certificate, unless it is unreadable (logged) or expired."""
        try:
            certificate = self._certificate(stored)
        except CertificateError as error:
            log.warn(
                "stored certificate for {name} unusable: {error}",
                name=managed.name,
                error=error,
            )
            return None
        return certificate if certificate.not_after > datetime.now(UTC) else None

    def _obtained(self, result: tuple[str, Certificate, str]) -> None:
        name, certificate, ordered_from = result
        if ordered_from:
            self.issued += 1
            log.info("ordered certificate for {name} from {issuer}", name=name, issuer=ordered_from)
        self.failures.pop(name, None)
        self.selector.put(name, certificate)
        log.info(
            "certificate for {name} ready (serial {serial}, expires {expires})",
            name=name,
            serial=format(certificate.serial_number, "x"),
            expires=certificate.not_after.isoformat(),
        )

    def _failed(self, failure: Failure, name: str) -> None:
        if name in self.on_demand and self.selector.managed(name) is None:
            log.error(
                "could not obtain certificate for {name} on demand: {error}",
                name=name,
                error=failure.getErrorMessage(),
            )
            self.names.pop(name, None)
            self.on_demand.discard(name)
            return
        count = self.failures.get(name, 0) + 1
        self.failures[name] = count
        delay = min(RETRY_FIRST * 2 ** (count - 1), RETRY_MAX)
        log.error(
            "could not obtain certificate for {name} (attempt {count}, retrying in {delay}s): "
            "{error}",
            name=name,
            count=count,
            delay=delay,
            error=failure.getErrorMessage(),
        )
        self._retries[name] = self.reactor.callLater(delay, self._retry, name)

    def _retry(self, name: str) -> None:
        self._retries.pop(name, None)
        if self.running:
            self.check(name)

    def _done(self, result: Any, name: str) -> None:
        self.in_flight.pop(name, None)
