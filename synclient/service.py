"""Everything a running client needs, wired together as Twisted services.

``build`` turns one folder's settings into its parts: per server a state, a remote and
an engine, all sharing the folder's lock (passes for different servers never run at
once on one folder) and telling each other which local paths they changed, so a file
downloaded from one server is uploaded to the others. ``SyncService`` runs one folder
continuously: one watcher feeding every engine, per server the events WebSocket and the
periodic full pass (the safety net). ``--config`` runs one ``SyncService`` per folder in
one process. The CLI and the ``twistd synclient`` plugin both use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import DeferredLock, gatherResults
from twisted.internet.task import LoopingCall

from synclient.apply import FolderGone
from synclient.delta import DeltaClient
from synclient.engine import Engine
from synclient.ignore import IgnoreRules
from synclient.planner import Strategy
from synclient.progress import Board, Progress
from synclient.remote import Remote, events_url
from synclient.scanner import Scanner
from synclient.state import StateDB

if TYPE_CHECKING:
    from synclient.watcher import Watcher


@dataclass(slots=True)
class Server:
    """One server a folder syncs with."""

    url: str
    token: str | None = None


@dataclass(slots=True)
class Settings:
    """One local folder and the servers it is kept in step with."""

    local_path: Path
    servers: list[Server]
    interval: float = 30.0
    strategy: Strategy = Strategy.KEEP_CLIENT
    excludes: list[str] = field(default_factory=list)
    allow_mass_delete: bool = False
    settle: float = 0.4
    debounce: float = 0.1
    initial_sync: bool = False
    compression: bool = True
    batches: bool = True
    name: str = ""
    """How messages name the folder when the process runs several ("" for one)."""
    delta: bool = True
    """Delta transfers (only changed chunks) for files of 256 KiB and more."""


@dataclass(slots=True)
class Parts:
    """What syncing the folder with one of its servers takes."""

    server: Server
    state: StateDB
    remote: Remote
    engine: Engine
    progress: Progress


def label(settings: Settings, server: Server, several: bool) -> str:
    """``folder @ server`` for messages and the progress line; "" when the process
    syncs one folder with one server (the messages then read as they always did)."""
    if not several:
        return ""
    return f"{settings.name or settings.local_path.name} @ {server.url}"


def build(
    settings: Settings,
    reactor: Any = None,
    board: Board | None = None,
    several: bool | None = None,
) -> list[Parts]:
    """The parts for every server of ``settings`` (in order), wired to each other."""
    root = settings.local_path
    board = board or Board(sys.stderr)
    if several is None:
        several = len(settings.servers) > 1
    lock = DeferredLock()
    parts: list[Parts] = []
    for server in settings.servers:
        state = StateDB(root, server.url, [s.url for s in settings.servers])
        remote = Remote(server.url, state.client_id, server.token, reactor=reactor)
        remote.compression = settings.compression
        remote.batches = settings.batches
        scanner = Scanner(root, IgnoreRules.load(root, settings.excludes), settle=settings.settle)
        name = label(settings, server, several)
        progress = Progress(board.stream, label=name, board=board)
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
            lock=lock,
            label=name,
            delta=DeltaClient.open(remote, root, state.path.parent) if settings.delta else None,
        )
        parts.append(Parts(server, state, remote, engine, progress))
    for part in parts:
        others = [p.engine for p in parts if p is not part]
        if others:
            part.engine.on_local_change = _fan_out(others)
    return parts


def _fan_out(engines: list[Engine]) -> Callable[[set[str]], None]:
    """Hand paths one engine changed locally to the folder's other engines: their next
    pass sees the change against their own base and sends it to their server (once: the
    server's event for it carries our client id and is ignored, and the engine that made
    the change finds the folder already matching its base)."""

    def notify(paths: set[str]) -> None:
        for engine in engines:
            engine.local_changed(paths)

    return notify


class SyncService(Service):
    """Continuous sync of one folder with each of its servers while running."""

    def __init__(
        self,
        settings: Settings,
        parts: list[Parts] | None = None,
        reactor: Any = None,
        on_gone: Callable[[SyncService], None] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.settings = settings
        self.parts = parts
        self.on_gone = on_gone
        """Called when the folder disappeared (then every engine of it has stopped);
        without it the reactor stops, as a single-folder client always did."""
        self.gone: FolderGone | None = None
        self.watcher: Watcher | None = None
        self.events: list[Any] = []
        self.loops: list[LoopingCall] = []

    def startService(self) -> None:
        # The watcher and the events WebSocket (autobahn, asyncio: a fifth of a
        # ``--once`` run's start-up) are imported only by a client that keeps running.
        from synclient.events import events_service
        from synclient.watcher import Watcher

        super().startService()
        if self.parts is None:
            self.parts = build(self.settings, self.reactor)
        engines = [p.engine for p in self.parts]
        for engine in engines:
            engine.on_gone = self._folder_gone

        def changed(paths: set[str], finished: Iterable[str] = ()) -> None:
            finished = set(finished)
            for engine in engines:
                engine.local_changed(paths, finished=finished)

        self.watcher = Watcher(
            self.settings.local_path, changed, self.settings.debounce, self.reactor
        )
        self.watcher.start()
        for part in self.parts:
            engine = part.engine
            events = events_service(
                events_url(part.server.url),
                part.remote.headers(),
                engine.remote_changed,
                lambda engine=engine: engine.remote_changed(None),  # type: ignore[misc]
                reactor=self.reactor,
            )
            events.startService()
            self.events.append(events)
            loop = LoopingCall(engine.full)
            loop.clock = self.reactor
            # The first full pass runs now unless the caller already did an initial sync.
            loop.start(self.settings.interval, now=not engine.scanned)
            self.loops.append(loop)

    def _folder_gone(self, error: FolderGone) -> None:
        if self.gone is not None:
            return
        self.gone = error
        for part in self.parts or []:
            part.engine.stopped = True
        if self.on_gone is not None:
            self.stopService()  # the process's other folders carry on
            self.on_gone(self)
        elif self.reactor.running:
            self.reactor.stop()

    def stopService(self) -> Any:
        if not self.running:
            return None
        super().stopService()
        for loop in self.loops:
            if loop.running:
                loop.stop()
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        stopping = [events.stopService() for events in self.events]
        for part in self.parts or []:
            part.engine.stopped = True
            part.remote.close()
        return gatherResults(stopping)
