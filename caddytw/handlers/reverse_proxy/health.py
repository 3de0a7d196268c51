"""Health checking: active probes on a timer, and passive accounting of proxy failures.

The decisions (is this probe result healthy? has an upstream now crossed its
``passes``/``fails`` threshold?) are pure functions; :class:`ActiveHealthChecker` is the
IService that runs probes on the injected reactor's clock, and the probe itself is an
injectable callable, so tests can drive the checker with a fake clock and fake probes
while the real one talks HTTP to real upstreams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.http_headers import Headers

from caddytw.admin import metrics
from caddytw.handlers.reverse_proxy import sharedhealth
from caddytw.handlers.reverse_proxy.config import (
    ActiveHealthConfig,
    PassiveHealthConfig,
    status_matches,
)
from caddytw.handlers.reverse_proxy.upstreams import Upstream

log = Logger()


@dataclass(frozen=True)
class ProbeResult:
    """What one active probe saw; ``error`` is set when no response came back."""

    status: int = 0
    body: bytes = b""
    error: str = ""


def probe_healthy(result: ProbeResult, config: ActiveHealthConfig) -> bool:
    """Caddy's rule: a response, the expected status (2xx-3xx if none is configured),
    and a body matching ``expect_body`` when given."""
    if result.error:
        return False
    if config.expect_status:
        if not status_matches(result.status, config.expect_status):
            return False
    elif not 200 <= result.status < 400:
        return False
    if config.expect_body is not None:
        return config.expect_body.search(result.body.decode("utf-8", "replace")) is not None
    return True


@dataclass
class Streak:
    """Consecutive probe outcomes for one upstream."""

    passes: int = 0
    fails: int = 0


def record_probe(
    streak: Streak, healthy: bool, currently: bool, config: ActiveHealthConfig
) -> bool:
    """Update a streak and return the upstream's new health: it flips only after
    ``fails`` consecutive failures or ``passes`` consecutive passes."""
    if healthy:
        streak.passes += 1
        streak.fails = 0
        return True if streak.passes >= config.passes else currently
    streak.fails += 1
    streak.passes = 0
    return False if streak.fails >= config.fails else currently


Probe = Callable[[Upstream], "Deferred[ProbeResult]"]


class _LimitedBody(Protocol):
    def __init__(self, limit: int, finished: Deferred[bytes]) -> None:
        self.limit = limit
        self.finished = finished
        self.parts: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        if self.limit and self.size + len(data) > self.limit:
            data = data[: self.limit - self.size]
        self.parts.append(data)
        self.size += len(data)
        if self.limit and self.size >= self.limit and self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if not self.finished.called:
            self.finished.callback(b"".join(self.parts))


class HTTPProbe:
    """The real probe: ``GET uri`` on the upstream (or ``port``), with the configured
    headers, through the handler's connector (so TLS upstreams are probed over TLS)."""

    BODY_LIMIT = 1024 * 1024

    def __init__(self, config: ActiveHealthConfig, connector: Any, reactor: Any) -> None:
        self.config = config
        self.connector = connector
        self.reactor = reactor

    def __call__(self, upstream: Upstream) -> Deferred[ProbeResult]:
        port = self.config.port or upstream.port
        headers = Headers()
        for name, values in self.config.headers:
            headers.setRawHeaders(name.encode("latin-1"), [v.encode("latin-1") for v in values])
        if not headers.hasHeader(b"host"):
            headers.setRawHeaders(b"host", [f"{upstream.host}:{port}".encode("idna")])
        agent = self.connector.agent(lambda protocol: None)
        url = self.connector.url(upstream.host, port, self.config.uri.encode("latin-1"))
        d: Deferred[Any] = agent.request(b"GET", url, headers)
        timer = self.reactor.callLater(self.config.timeout, d.cancel)

        def got_response(response: Any) -> Deferred[ProbeResult]:
            finished: Deferred[bytes] = Deferred()
            limit = self.config.max_size or self.BODY_LIMIT
            response.deliverBody(_LimitedBody(limit, finished))
            return finished.addCallback(lambda body: ProbeResult(response.code, body))

        def stop_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        d.addCallback(got_response)
        d.addBoth(stop_timer)
        d.addErrback(lambda f: ProbeResult(error=f.getErrorMessage() or repr(f.value)))
        return d


class ActiveHealthChecker(Service):
    """Probes every upstream at start and then every ``interval`` on the reactor clock."""

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        config: ActiveHealthConfig,
        probe: Probe,
        reactor: Any,
    ) -> None:
        self.upstreams = list(upstreams)
        self.config = config
        self.probe = probe
        self.reactor = reactor
        self.streaks = {u.dial: Streak() for u in self.upstreams}
        self._call: Any = None
        self._round: Deferred[Any] | None = None

    def startService(self) -> None:
        super().startService()
        self._schedule(0)

    def stopService(self) -> Any:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return None

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._call = self.reactor.callLater(delay, self.check_all)

    def check_all(self) -> Deferred[Any]:
        """One round over every upstream; the next round is scheduled when it ends."""
        self._call = None
        # An address made of request placeholders has nothing to probe between requests.
        rounds = [self._check(u) for u in self.upstreams if u.template is None]
        done: Deferred[Any] = DeferredList(rounds, consumeErrors=True)
        done.addBoth(lambda _: self._schedule(self.config.interval))
        return done

    def _check(self, upstream: Upstream) -> Deferred[Any]:
        def judge(result: ProbeResult) -> None:
            healthy = probe_healthy(result, self.config)
            before = upstream.state.active_healthy
            after = record_probe(self.streaks[upstream.dial], healthy, before, self.config)
            upstream.state.active_healthy = after
            metrics.set_upstream_healthy(upstream.dial, after)
            if before != after:
                sharedhealth.active_changed(upstream, after)
                log.info(
                    "upstream {dial} is now {state} ({why})",
                    dial=upstream.dial,
                    state="healthy" if after else "unhealthy",
                    why=result.error or f"status {result.status}",
                )

        d: Deferred[Any] = self.probe(upstream)
        d.addCallback(judge)
        d.addErrback(lambda f: log.failure("health check failed", failure=f))
        return d


class PassiveHealth:
    """Counts proxy failures against upstreams for ``fail_duration``, then forgets them."""

    def __init__(self, config: PassiveHealthConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self._pending: dict[Any, Upstream] = {}
        #: Is any response ever judged? Decided once: most configs judge none.
        self.judging = bool(config.unhealthy_status) or bool(config.unhealthy_latency)

    @property
    def enabled(self) -> bool:
        return self.config.fail_duration > 0

    def count_failure(self, upstream: Upstream) -> None:
        if not self.enabled:
            return
        before = upstream.state.fails
        upstream.state.fails += 1
        metrics.upstream_failed(upstream.dial)
        sharedhealth.failure_counted(upstream, before, self.config.fail_duration)
        call: Any = None

        def forget() -> None:
            self._pending.pop(call, None)
            upstream.state.fails -= 1

        call = self.reactor.callLater(self.config.fail_duration, forget)
        self._pending[call] = upstream

    def judge_response(self, upstream: Upstream, status: int, latency: float) -> None:
        """Count a failure for an unhealthy status or a slow response (still delivered)."""
        if not self.judging:
            return
        bad_status = any(status_matches(status, code) for code in self.config.unhealthy_status)
        too_slow = bool(self.config.unhealthy_latency) and latency > self.config.unhealthy_latency
        if bad_status or too_slow:
            self.count_failure(upstream)

    def forget_all(self) -> None:
        """On shutdown or reload: expire every pending failure now (Caddy does the same)."""
        for call, upstream in list(self._pending.items()):
            if call.active():
                call.cancel()
            upstream.state.fails -= 1
        self._pending.clear()
