"""Closing HTTP connections gracefully: idle ones now, busy ones after their request.

Used when a listener goes away (a reload removed its address, or the server stops):
the listener has already stopped accepting; what remains are live connections. Idle
keep-alive connections are closed at once, busy ones are told not to keep the
connection alive after the current response and closed as soon as they are idle,
and whatever is still open after the grace period is aborted. ``grace=None`` waits
for as long as it takes (Caddy's default, an "eternal" grace period) for busy ones.

Closing TLS waits for the peer's ``close_notify``, which an idle browser connection
never sends: an idle connection still open ``IDLE_CLOSE_WAIT`` after being told to
close is aborted, as Go closes idle connections outright on shutdown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall

POLL_INTERVAL = 0.05
IDLE_CLOSE_WAIT = 1.0


def channel_of(protocol: Any) -> Any:
    """The live channel under a protocol (HTTP/1.1, or HTTP/2 after ALPN/h2c)."""
    return getattr(protocol, "_channel", protocol)


def is_busy(protocol: Any) -> bool:
    """Whether a request is being received or answered on this connection.

    A request marked ``long_lived`` (a WebSocket tunnel, an event stream) does not count:
    like Caddy with hijacked connections, shutdown closes it instead of waiting for it.
    """
    channel = channel_of(protocol)
    if getattr(channel, "streams", None):
        return True
    requests = getattr(channel, "requests", None) or ()
    return any(not getattr(request, "long_lived", False) for request in requests)


def is_closed(protocol: Any) -> bool:
    transport = getattr(channel_of(protocol), "transport", None)
    return transport is None or bool(getattr(transport, "disconnected", False))


def close_when_idle(protocol: Any) -> bool:
    """Start closing ``protocol`` if idle (True) or make its current request its last."""
    channel = channel_of(protocol)
    if is_closed(protocol):
        return True
    if is_busy(protocol):
        if hasattr(channel, "persistent"):
            channel.persistent = False
        return False
    channel.transport.loseConnection()
    return True


def abort(protocol: Any) -> None:
    transport = getattr(channel_of(protocol), "transport", None)
    if transport is None:
        return
    abort_connection = getattr(transport, "abortConnection", None)
    if abort_connection is not None:
        abort_connection()
    else:
        transport.loseConnection()


def drain(connections: Iterable[Any], grace: float | None, reactor: Any) -> Deferred[None]:
    """Close ``connections`` gracefully; fires when all are gone (or aborted after grace)."""
    started = reactor.seconds()
    pending = set()
    closing_idle: dict[Any, float] = {}  # idle connection -> when it was told to close
    for protocol in connections:
        if close_when_idle(protocol):
            closing_idle[protocol] = started
        pending.add(protocol)
    pending = {p for p in pending if not is_closed(p)}
    if not pending:
        return succeed(None)
    done: Deferred[None] = Deferred()

    def check() -> None:
        now = reactor.seconds()
        for protocol in list(pending):
            if is_closed(protocol):
                pending.discard(protocol)
            elif not close_when_idle(protocol):
                closing_idle.pop(protocol, None)
            elif now - closing_idle.setdefault(protocol, now) >= IDLE_CLOSE_WAIT:
                abort(protocol)
                pending.discard(protocol)
        if pending and grace is not None and reactor.seconds() - started >= grace:
            for protocol in pending:
                abort(protocol)
            pending.clear()
        if not pending:
            loop.stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    loop.start(POLL_INTERVAL, now=False).addCallback(lambda _: done.callback(None))
    return done
