"""Small events shared between the worker processes of ``twistd caddy --workers N``.

Each worker keeps its own in-memory state; a few pieces of it must agree across
workers (an upstream one worker found dead should not keep getting traffic from the
others). Code that owns such state ``publish``es a JSON message on a topic when it
changes, and ``subscribe``s to the topic to apply the other workers' messages. The
worker (:mod:`caddytw.server.workers.worker`) connects this module to the supervisor, which hands
each message to every other worker; outside a worker nothing is connected, and
``publish`` does nothing.

Messages are best effort and unordered across workers: subscribers must only apply
state that is bounded in time or refreshed locally, so that a lost message or a
worker that died is harmless.

A leaf beside :mod:`caddytw.admin.metrics` and :mod:`caddytw.admin.upstreams`, the
other process-wide registries that handlers feed and the server reads: the worker
connects it and handlers (``reverse_proxy``'s shared health) publish on it, and
handlers must not import the server.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

log = Logger()

Message = dict[str, Any]
Listener = Callable[[Message], None]

_listeners: dict[str, list[Callable[[], Listener | None]]] = {}
_sender: Callable[[bytes], None] | None = None


def connect(sender: Callable[[bytes], None] | None) -> None:
    """Send published messages (encoded, one line without its newline) to ``sender``;
    ``None`` disconnects."""
    global _sender
    _sender = sender


def connected() -> bool:
    return _sender is not None


def publish(topic: str, message: Message) -> None:
    """Tell the other workers (nothing when not in a worker)."""
    if _sender is None:
        return
    _sender(json.dumps({"topic": topic, **message}, separators=(",", ":")).encode())


def subscribe(topic: str, listener: Listener) -> None:
    """Call ``listener`` with each message other workers publish on ``topic``.

    A bound method is held weakly (its object may be a per-config table that goes
    away); anything else is held for the life of the process.
    """
    ref: Callable[[], Listener | None] = (
        weakref.WeakMethod(listener) if inspect.ismethod(listener) else lambda: listener
    )
    _listeners.setdefault(topic, []).append(ref)


def deliver(line: bytes) -> None:
    """A message from another worker: hand it to the topic's listeners."""
    try:
        message = json.loads(line)
        topic = message.pop("topic")
    except (ValueError, KeyError, AttributeError, TypeError):
        log.warn("peers: unreadable message {line!r}", line=line[:200])
        return
    refs = _listeners.get(topic, [])
    alive = []
    for ref in refs:
        listener = ref()
        if listener is None:
            continue
        alive.append(ref)
        try:
            listener(dict(message))
        except Exception:
            log.failure("peers: listener for {topic} failed", topic=topic)
    if len(alive) != len(refs):
        _listeners[topic] = alive
