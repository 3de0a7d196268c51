"""``LISTEN`` for one channel, on a connection and a thread of its own.

Shared by the nodes' sync index (:mod:`caddytw.sync.pgindex`: other nodes' commits) and
the PostgreSQL certificate storage (:mod:`caddytw.tls.pgstore`: other nodes' pending
challenges); both need the same reconnect-and-catch-up loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from caddytw.postgres.database import Database, DatabaseUnavailable, is_unavailable

log = Logger()


class ChangeListener:
    """``LISTEN`` on a connection of its own, in a thread of its own; calls
    ``on_change()`` for each notification and after each (re)connection (so changes
    committed while it was disconnected are caught up too)."""

    RETRY = 1.0

    def __init__(
        self,
        database: Database,
        channel: str,
        on_change: Callable[[], None],
        label: str = "file_sync: listening for other nodes' changes",
        on_connect: Callable[[Any], None] | None = None,
    ) -> None:
        self.database = database
        #: Called with the listening connection once it listens, before the first
        #: ``on_change`` (to register the session, whose life is the listener's).
        self.on_connect = on_connect
        self.channel = channel
        self.on_change = on_change
        self.label = label
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"caddytw-listen {channel}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        warned = False
        while not self._stopping.is_set():
            try:
                conn = self.database.connect_direct(autocommit=True)
            except DatabaseUnavailable as error:
                if not warned:
                    log.warn("{label}: cannot connect: {e}", label=self.label, e=error)
                    warned = True
                self._stopping.wait(self.RETRY)
                continue
            if warned:
                log.info("{label} again", label=self.label)
                warned = False
            try:
                with conn:
                    conn.execute(f"LISTEN {self.channel}")
                    if self.on_connect is not None:
                        self.on_connect(conn)
                    self.on_change()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.on_change()
            except Exception as error:
                if not is_unavailable(error):
                    log.failure("{label} failed", label=self.label)
                self._stopping.wait(self.RETRY)
