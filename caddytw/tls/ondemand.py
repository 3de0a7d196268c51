"""Certificates that come into being at handshake: on-demand TLS and ``get_certificate``.

:meth:`HandshakeCertificates.prepare` is what :class:`~caddytw.tls.hello.WaitingTLSFactory`
calls with a ClientHello. For a name whose automation policy has ``get_certificate``
managers it asks each ``http`` manager (``GET URL?server_name=...&signature_schemes=...
&cipher_suites=...&local_ip=...``:
200 with a PEM bundle of chain and key, 204 for "not mine") on every handshake, as Caddy
does. For an ``on_demand`` policy with no certificate yet it checks, in Caddy's order,
the policy's allowlist (the names the config itself names, when it names any), the
``ask`` endpoint (``GET ask?domain=NAME`` must answer 200) and the rate limit (at most
``burst`` orders per ``interval``), then loads the certificate from storage or orders
it through the :class:`~caddytw.tls.manager.CertificateManager`, which then keeps
renewing it. Concurrent handshakes for one name share one decision and one order.
"""

from __future__ import annotations

import collections
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.tls.automation import HTTPSPlan, ManagedName, default_issuers, policy_for
from caddytw.tls.certs import Certificate, CertificateError, CertificateSelector
from caddytw.tls.challenges import ChallengeRegistry
from caddytw.tls.config import AutomationPolicy, OnDemandConfig, subject_matches
from caddytw.tls.hello import ClientHello
from caddytw.tls.manager import CertificateManager

log = Logger()

ASK_TIMEOUT = 10.0
FETCH_TIMEOUT = 10.0


class OnDemandRefused(Exception):
    """The name may not have a certificate now; the message says which check said no."""


class RateLimiter:
    """At most ``burst`` events in any ``interval`` seconds (0 for either: no limit)."""

    def __init__(self, interval: float, burst: int, clock: Any) -> None:
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self.events: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        if self.interval <= 0 or self.burst <= 0:
            return True
        now = self.clock.seconds()
        while self.events and now - self.events[0] >= self.interval:
            self.events.popleft()
        if len(self.events) >= self.burst:
            return False
        self.events.append(now)
        return True


class HandshakeCertificates:
    """Decides and fetches certificates for names seen in ClientHellos."""

    def __init__(
        self,
        plan: HTTPSPlan,
        selector: CertificateSelector,
        manager: CertificateManager,
        reactor: Any,
        challenges: ChallengeRegistry,
    ) -> None:
        self.plan = plan
        self.challenges = challenges
        self.selector = selector
        self.manager = manager
        self.reactor = reactor
        self.settings: OnDemandConfig = plan.tls_app.on_demand
        self.limiter = RateLimiter(self.settings.interval, self.settings.burst, reactor)
        self.pending: dict[str, list[Deferred[Any]]] = {}
        if self.active:
            # The HTTP client the ask and get_certificate calls use, imported now rather
            # than by the first handshake (on the reactor, which must not wait for it).
            import treq  # noqa: F401
        if any(p.on_demand for p in plan.tls_app.policies) and not self.settings.ask:
            log.warn(
                "on-demand TLS without an ask endpoint: any name a client sends gets an "
                "ACME order (set automation.on_demand.ask)"
            )

    @property
    def active(self) -> bool:
        return any(p.on_demand or p.get_certificate for p in self.plan.tls_app.policies)

    def prepare(self, hello: ClientHello) -> Deferred[Any] | None:
        name = (hello.server_name or "").strip().rstrip(".").lower()
        if not name:
            return None
        if name in self.challenges.tls_alpn01:
            return None  # the CA validating our own order: answer it now
        policy = policy_for(name, self.plan.tls_app.policies)
        if policy.get_certificate:
            return self._fetch(name, hello, policy)
        if not policy.on_demand or self.selector.has_name(name):
            return None
        return self._on_demand(name, policy)

    # -- on-demand issuance ----------------------------------------------------------

    def _on_demand(self, name: str, policy: AutomationPolicy) -> Deferred[Any]:
        waiter: Deferred[Any] = Deferred()
        waiters = self.pending.get(name)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        # Registered before starting: a decision made at once (a refusal) settles now.
        self.pending[name] = [waiter]
        self._decide_and_obtain(name, policy).addBoth(self._settled, name)
        return waiter

    def _settled(self, result: Any, name: str) -> None:
        for waiter in self.pending.pop(name, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    @inlineCallbacks
    def _decide_and_obtain(self, name: str, policy: AutomationPolicy) -> Any:
        allowlist = [n for n, m in self.plan.on_demand.items() if m.policy is policy]
        if allowlist and not any(subject_matches(name, allowed) for allowed in allowlist):
            raise OnDemandRefused(f"{name} is not among the names the config serves")
        if self.settings.ask:
            yield self._ask(name)
        managed = ManagedName(name, policy, policy.issuers or default_issuers(name))
        # One stored earlier (by this process or another) is no new order: no limit.
        pool = self.reactor.getThreadPool()
        stored = yield deferToThreadPool(
            self.reactor, pool, self.manager.stored_certificate, managed
        )
        if stored is None and not self.limiter.allow():
            raise OnDemandRefused(f"on-demand rate limit reached; not obtaining {name}")
        yield self.manager.manage_on_demand(managed, stored)
        if not self.selector.has_name(name):
            raise OnDemandRefused(f"obtaining a certificate for {name} failed")

    @inlineCallbacks
    def _ask(self, name: str) -> Any:
        separator = "&" if "?" in self.settings.ask else "?"
        url = self.settings.ask + separator + urlencode({"domain": name})
        import treq  # only a config with an on-demand ``ask`` URL calls out

        try:
            response = yield treq.get(url, timeout=ASK_TIMEOUT)
            yield treq.content(response)
        except Exception as error:
            raise OnDemandRefused(f"asking {self.settings.ask} about {name}: {error}") from error
        if response.code != 200:
            raise OnDemandRefused(
                f"{self.settings.ask} answered {response.code}: no certificate for {name}"
            )

    # -- get_certificate managers ----------------------------------------------------

    def _fetch(self, name: str, hello: ClientHello, policy: AutomationPolicy) -> Deferred[Any]:
        fetched = self._fetch_from_managers(name, hello, policy)

        def install(certificate: Certificate | None) -> Any:
            self.selector.set_external(name, certificate)
            if certificate is None and policy.on_demand and not self.selector.has_name(name):
                return self._on_demand(name, policy)
            return None

        fetched.addCallback(install)
        return fetched

    @inlineCallbacks
    def _fetch_from_managers(self, name: str, hello: ClientHello, policy: AutomationPolicy) -> Any:
        # Caddy's HTTPCertGetter query: hex code points, comma-separated.
        query = {
            "server_name": name,
            "signature_schemes": ",".join(f"{s:x}" for s in hello.signature_schemes),
            "cipher_suites": ",".join(f"{s:x}" for s in hello.cipher_suites),
        }
        if hello.local_ip:
            query["local_ip"] = hello.local_ip
        import treq  # only a config with get_certificate managers calls out

        for url in policy.get_certificate:
            separator = "&" if "?" in url else "?"
            target = url + separator + urlencode(query)
            try:
                response = yield treq.get(target, timeout=FETCH_TIMEOUT)
                body = yield treq.content(response)
            except Exception as error:
                log.error("get_certificate {url}: {error}", url=url, error=error)
                continue
            if response.code == 204:
                continue
            if response.code != 200:
                log.error("get_certificate {url} answered {code}", url=url, code=response.code)
                continue
            try:
                return certificate_from_bundle(body)
            except CertificateError as error:
                log.error("get_certificate {url}: {error}", url=url, error=error)
        return None


def certificate_from_bundle(pem: bytes) -> Certificate:
    """A PEM bundle holding the chain and the private key, in any order."""
    certificates: list[bytes] = []
    keys: list[bytes] = []
    for block in pem.split(b"-----END ")[:-1]:
        begin = block.find(b"-----BEGIN ")
        if begin < 0:
            continue
        label = block[begin + 11 : block.find(b"-----", begin + 11)]
        end_label = b"-----END " + label + b"-----\n"
        text = block[begin:] + end_label
        (keys if label.endswith(b"PRIVATE KEY") else certificates).append(text)
    if not certificates or not keys:
        raise CertificateError("the bundle needs a certificate and a private key")
    return Certificate.from_pem(b"".join(certificates), keys[0])
