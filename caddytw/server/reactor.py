"""The reactor a caddytw server process runs on: Twisted's epoll reactor, minus the
legacy log context it sets up around every ready descriptor.

``EPollReactor.doPoll`` hands each ready descriptor to ``log.callWithLogger``, which
asks the selectable for its ``logPrefix()``, builds a context dict and pushes it on
Twisted's context stack for the duration of the read or write, so that an old-style
``log.msg`` made meanwhile is labelled ``[SomeProtocol,3,127.0.0.1]``. On a proxied
1 KiB request (two ready descriptors: the client and the upstream) that is about 9% of
all instructions the server executes. caddytw logs through ``twisted.logger`` with
namespaces, which never reads that context, so :class:`CaddyReactor` dispatches
directly. What ``callWithLogger`` is also for is kept: an exception escaping a
descriptor's handler is logged (with the selectable named) and the loop goes on;
``KeyboardInterrupt`` still stops it.

Installed by the server's entry points (``twistd caddy``, ``caddytw run``, the
``--workers`` processes) when nothing has chosen a reactor yet: ``twistd -r NAME`` or a
program embedding caddytw as a library keeps its own.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from twisted.logger import Logger

log = Logger()

try:
    from twisted.internet.epollreactor import EPollReactor
except ImportError:  # no epoll on this platform: Twisted's default reactor serves
    EPollReactor = None  # type: ignore[assignment,misc]


if EPollReactor is not None:

    class CaddyReactor(EPollReactor):
        """``EPollReactor`` whose poll step calls each ready selectable straight away."""

        def doPoll(self, timeout: float | None) -> None:
            try:
                ready = self._poller.poll(
                    -1 if timeout is None else timeout, len(self._selectables)
                )
            except OSError as error:
                if error.errno == errno.EINTR:
                    return
                raise
            selectables = self._selectables
            handle = self._doReadOrWrite
            for fd, event in ready:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue  # removed by an earlier handler in this same batch
                try:
                    handle(selectable, fd, event)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    log.failure("Unhandled error in {selectable!r}", selectable=selectable)

        doIteration = doPoll


def install() -> bool:
    """Make :class:`CaddyReactor` the global reactor, unless one is installed already
    (``twistd -r``, an embedding program) or epoll is missing. True if it was installed."""
    if EPollReactor is None or "twisted.internet.reactor" in sys.modules:
        return False
    from twisted.internet.main import installReactor

    reactor: Any = CaddyReactor()
    installReactor(reactor)
    return True
