"""Everything a running client needs, wired together as one Twisted service.

``build`` turns options into the parts (state, remote, scanner, engine); ``SyncService``
starts continuous sync: the watcher feeding the engine, the events WebSocket pulling
server changes, and the periodic full pass (the safety net). The CLI and the ``twistd
synclient`` plugin both use it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from synclient.engine import Engine
from synclient.events import events_service
from synclient.ignore import IgnoreRules
from synclient.planner import Strategy
from synclient.progress import Progress
from synclient.remote import Remote, events_url
from synclient.scanner import Scanner
from synclient.state import StateDB
from synclient.watcher import Watcher


@dataclass(slots=True)
class Settings:
    server: str
    local_path: Path
    token: str | None = None
    interval: float = 30.0
    strategy: Strategy = Strategy.KEEP_CLIENT
    excludes: list[str] = field(default_factory=list)
    allow_mass_delete: bool = False
    settle: float = 0.4
    debounce: float = 0.1
    initial_sync: bool = False
    compression: bool = True
    batches: bool = True


@dataclass(slots=True)
class Parts:
    state: StateDB
    remote: Remote
    engine: Engine
    progress: Progress


def build(settings: Settings, reactor: Any = None) -> Parts:
    root = settings.local_path
    state = StateDB(root)
    remote = Remote(settings.server, state.client_id, settings.token, reactor=reactor)
    remote.compression = settings.compression
    remote.batches = settings.batches
    scanner = Scanner(root, IgnoreRules.load(root, settings.excludes), settle=settings.settle)
    progress = Progress(sys.stderr)
    engine = Engine(
        root,
        state,
        remote,
        scanner,
        strategy=settings.strategy,
        allow_mass_delete=settings.allow_mass_delete,
        progress=progress,
        reactor=reactor,
        load_rules=lambda: IgnoreRules.load(root, settings.excludes),
    )
    return Parts(state, remote, engine, progress)


class SyncService(Service):
    """Continuous sync of one folder with one server while running."""

    def __init__(self, settings: Settings, parts: Parts | None = None, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.settings = settings
        self.parts = parts
        self.watcher: Watcher | None = None
        self.events: Any = None
        self.loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.parts is None:
            self.parts = build(self.settings, self.reactor)
        engine = self.parts.engine
        self.watcher = Watcher(
            self.settings.local_path, engine.local_changed, self.settings.debounce, self.reactor
        )
        self.watcher.start()
        self.events = events_service(
            events_url(self.settings.server),
            self.parts.remote.headers(),
            engine.remote_changed,
            lambda: engine.remote_changed(None),
            reactor=self.reactor,
        )
        self.events.startService()
        self.loop = LoopingCall(engine.full)
        self.loop.clock = self.reactor
        # The first full pass runs now unless the caller already did an initial sync.
        self.loop.start(self.settings.interval, now=not engine.scanned)

    def stopService(self) -> Any:
        super().stopService()
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.parts is not None:
            self.parts.engine.stopped = True
        stopping = self.events.stopService() if self.events is not None else None
        if self.parts is not None:
            self.parts.remote.close()
        return stopping
