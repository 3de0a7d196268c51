"""Orchestration: when to scan, pull, plan and apply.

One *cycle* at a time: refresh the server view (the journal since the cursor, or a full
listing when the cursor cannot be served), scan the local side (the whole tree, or only
the paths the watcher reported), plan the affected paths three-way, guard against mass
deletion, apply, then re-plan whatever came back dirty (a 412, a path that changed while
being handled) for a few rounds. Triggers while a cycle runs are merged into the next.

Triggers: the watcher (local paths, debounced), the server's events (a pull), the
periodic safety net (a full scan), and a retry with backoff while the server is away.

Several servers (``synclient.service``): one engine per server, each with its own state
(merge base, listing, cursor), sharing the folder's lock. An engine reads its server's
journal, then takes the lock for scan, plan and apply, and before releasing it hands the
local paths it changed to the other engines, which then see them as local changes
against their own base and send them on. Their servers' events for those uploads carry
this client's id and are ignored, so nothing loops.

Safety (``shared/SYNC-DESIGN.md``): only journal tombstones delete; any re-list is a
fresh merge (the base is forgotten, so the plan is a union). Our own files, ignored
paths, paths at or below a symbolic link and names one side could not store take no
part in planning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from caddytw.sync.protocol import Change
from synclient import planner
from synclient.apply import Applier, FolderGone, Outcome, version_of
from synclient.delta import DeltaClient
from synclient.folder import MARKER
from synclient.ignore import IgnoreRules
from synclient.planner import DIR_HASH, DeleteLocal, DeleteRemote, PathState, Strategy, Version
from synclient.progress import Progress
from synclient.remote import BadAnswer, Remote, RemoteError, Unreachable
from synclient.scanner import Scanner, ScanResult, is_own_path
from synclient.state import StateDB

log = Logger()

ROUNDS = 4
"""Re-plans of dirty paths within one cycle before leaving them to the next."""

LOCAL_KINDS = (
    planner.Download,
    planner.DeleteLocal,
    planner.MoveLocal,
    planner.RenameLocal,
    planner.SaveRemoteCopy,
)
"""The actions that change the local folder."""


@dataclass(slots=True)
class CycleReport:
    planned: int = 0
    done: int = 0
    conflicts: list[planner.Conflict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    refused_deletes: int = 0
    unsettled: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)
    unstorable: dict[str, str] = field(default_factory=dict)
    local_changes: set[str] = field(default_factory=set)
    """Paths this pass may have changed in the local folder (downloads, local deletes
    and moves, conflict copies): the folder's other servers must look at them."""

    @property
    def clean(self) -> bool:
        return not (
            self.failed or self.refused_deletes or self.unsettled or self.left or self.unstorable
        )


class Engine:
    def __init__(
        self,
        root: Path,
        state: StateDB,
        remote: Remote,
        scanner: Scanner,
        *,
        strategy: Strategy = Strategy.KEEP_CLIENT,
        allow_mass_delete: bool = False,
        progress: Progress | None = None,
        reactor: Any = None,
        load_rules: Callable[[], IgnoreRules] | None = None,
        lock: DeferredLock | None = None,
        label: str = "",
        on_local_change: Callable[[set[str]], None] | None = None,
        on_gone: Callable[[FolderGone], None] | None = None,
        delta: DeltaClient | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.root = root
        self.state = state
        self.remote = remote
        self.scanner = scanner
        self.strategy = strategy
        self.allow_mass_delete = allow_mass_delete
        self.progress = progress
        self.load_rules = load_rules
        self.lock = lock or DeferredLock()
        """Held for a whole pass. A folder synced with several servers shares one lock
        among their engines: passes never interleave, so each plans against a local
        tree no other pass is changing."""
        self.label = label
        """Names this folder and server in messages when the process runs several."""
        self.log = Logger(namespace=log.namespace, source=self)
        self.on_local_change = on_local_change
        self.on_gone = on_gone
        """Re-reads ``.syncignore`` (and the ``--exclude`` patterns) for each full pass."""
        self.applier = Applier(
            root,
            state,
            remote,
            on_file=progress.file_done if progress else None,
            on_bytes=progress.add_bytes if progress else None,
            delta=delta,
        )
        self.local: dict[str, Version] = {}
        self.links: set[str] = set()
        """Symbolic links in the folder: they and everything below them are left alone."""
        self._reported_links: set[str] = set()
        self.unstorable: dict[str, tuple[Version | None, Version | None, str]] = {}
        """Paths one side could not store, with the (local, remote) versions that failed
        and why: left out of planning (never a delete, never a retry loop) until either
        version changes."""
        self.scanned = False
        # Triggers waiting for the next cycle.
        self._pending_local: set[str] = set()
        #: Paths the watcher saw closed after writing, until a scan has hashed them.
        self._finished: set[str] = set()
        self._want_pull = False
        self._want_full = False
        self._running: Deferred[CycleReport] | None = None
        self._scheduled: Any = None
        self._retry_delay = 0.0
        self._away = False
        """Whether the last pass found the server unreachable (reported once)."""
        self.last_report = CycleReport()
        self.stopped = False
        self.gone: FolderGone | None = None
        """Why the engine stopped on its own (the process then exits with status 5)."""

    # -- triggers -------------------------------------------------------------------------

    def local_changed(
        self, paths: Iterable[str], delay: float = 0.0, *, finished: Iterable[str] = ()
    ) -> None:
        """Local paths changed; ``finished`` ones were closed after writing (or moved
        in), so the scanner need not wait for them to settle."""
        self._pending_local.update(paths)
        self._finished.update(finished)
        self.schedule(delay)

    def remote_changed(self, change: Change | None = None) -> None:
        """An event from the server (``None``: the events connection just opened)."""
        if change is not None and change.origin == self.state.client_id:
            return  # our own change: already in the state
        self._want_pull = True
        self.schedule(0.0)

    def full(self) -> None:
        self._want_full = self._want_pull = True
        self.schedule(0.0)

    def schedule(self, delay: float) -> None:
        """Run a cycle after ``delay`` seconds (earliest request wins)."""
        if self.stopped:
            return
        if self._scheduled is not None and self._scheduled.active():
            if self._scheduled.getTime() <= self.reactor.seconds() + delay:
                return
            self._scheduled.cancel()
        self._scheduled = self.reactor.callLater(delay, self._kick)

    def _kick(self) -> None:
        self._scheduled = None
        if self._running is not None:
            return  # the running cycle reschedules itself when it ends
        self._running = Deferred.fromCoroutine(self._cycle_from_triggers())
        self._running.addErrback(self._crashed)

    def _crashed(self, failure: Any) -> None:
        self._running = None
        if failure.check(FolderGone):
            self.log.error("{error}; stopping", error=failure.value)
            self.gone = failure.value
            self.stopped = True
            if self.on_gone is not None:
                self.on_gone(failure.value)
            elif self.reactor.running:
                self.reactor.stop()
            return
        self.log.failure("sync cycle failed", failure)
        self._retry()

    def _retry(self) -> None:
        self._retry_delay = min(max(self._retry_delay * 2, 0.5), 10.0)
        self._want_pull = True
        self.schedule(self._retry_delay)

    async def _cycle_from_triggers(self) -> CycleReport:
        # The server's journal is read before the folder's lock is taken (it changes
        # only this server's state), so a server that answers slowly or not at all never
        # holds up the folder's other servers. The local triggers are taken once the
        # folder is ours: a pass of another server that ran meanwhile has handed over
        # the paths it changed, so none is planned from a stale view of the folder.
        pull = self._want_pull or self._want_full or not self.scanned
        self._want_pull = False
        try:
            dirty = await self.pull(full_list=False) if pull else set()
        except RemoteError as error:
            return self._failed(error, set(), full=False)
        async with self.lock:
            return await self._triggered(dirty, pulled=pull)

    async def _triggered(self, dirty: set[str], pulled: bool) -> CycleReport:
        local = self._pending_local
        self._pending_local = set()
        full = (self._want_full and pulled) or not self.scanned
        if full:
            self._want_full = False
        try:
            report = await self._locked_cycle(dirty, full, local)
            self._retry_delay = 0.0
            if self._away:
                self.log.warn("server reachable again")
                self._away = False
        except RemoteError as error:
            return self._failed(error, local, full)
        self._running = None
        self.last_report = report
        if report.unsettled:
            self.local_changed(report.unsettled, delay=self.scanner.settle)
        if self._pending_local or self._want_pull or self._want_full:
            self.schedule(0.0)
        return report

    def _failed(self, error: RemoteError, local: set[str], full: bool) -> CycleReport:
        """Unreachable, or an answer the client cannot use (e.g. BadAnswer): nothing was
        decided on it; say so once per failed pass and try again later."""
        if isinstance(error, Unreachable):
            # Said once per outage: a server away for hours (one of several, say) must
            # not fill the log with a line per retry.
            if not self._away:
                self.log.warn(
                    "server unreachable ({error}); retrying until it answers", error=error
                )
            self._away = True
        else:
            self.log.error("sync pass stopped: {error}; retrying", error=error)
        self._pending_local |= local
        self._want_full |= full
        self._running = None
        self._retry()
        return CycleReport()

    # -- one cycle ------------------------------------------------------------------------

    def _check_folder(self) -> None:
        if not self.root.is_dir() or not self.state.path.exists():
            raise FolderGone(f"the sync folder {self.root} (or its state) is gone")
        if not os.path.lexists(self.root / MARKER):
            raise FolderGone(f"the folder marker {MARKER} in {self.root} is gone")

    async def cycle(
        self, *, full: bool, pull: bool = True, local_paths: Iterable[str] = ()
    ) -> CycleReport:
        """Sync once. ``full`` scans the whole tree and plans every path."""
        dirty = await self.pull(full_list=False) if pull or full else set()
        async with self.lock:
            return await self._locked_cycle(dirty, full, local_paths)

    async def _locked_cycle(
        self, dirty: set[str], full: bool, local_paths: Iterable[str]
    ) -> CycleReport:
        """A pass while holding the folder's lock. The local paths it changed are handed
        to the folder's other engines before the lock is released, even when the pass
        stops half way (what was written is written)."""
        report = CycleReport()
        try:
            await self._cycle(report, dirty, full, local_paths)
        finally:
            if report.local_changes and self.on_local_change is not None:
                self.on_local_change(report.local_changes)
        return report

    async def _cycle(
        self, report: CycleReport, dirty: set[str], full: bool, local_paths: Iterable[str]
    ) -> None:
        """``dirty``: the paths the pull just before found changed on the server."""
        self._check_folder()
        dirty = set(dirty)
        if full:
            if self.load_rules is not None:
                self.scanner.ignore = self.load_rules()
            scan = await self._scan(None)
            dirty = set(self.state.base) | set(self.local) | set(self.state.remote)
        else:
            paths = set(local_paths)
            if paths:
                scan = await self._scan(paths)
                dirty |= self._touched(scan)
            else:
                scan = ScanResult()
        report.unsettled = set(scan.unsettled)
        await self._plan_and_apply(dirty, report, show_progress=full)

    async def _plan_and_apply(
        self, dirty: set[str], report: CycleReport, show_progress: bool
    ) -> None:
        for _round in range(ROUNDS):
            dirty -= report.unsettled
            if not dirty:
                return
            result = self.plan(dirty)
            self._guard(result, report)
            report.planned += len(result.transfers())
            report.conflicts += result.conflicts
            for conflict in result.conflicts:
                self.log.warn(
                    "conflict on {path}: kept the {winner} version; the other is {copy}",
                    path=conflict.path,
                    winner=conflict.winner,
                    copy=conflict.copy,
                )
            if self.progress and show_progress:
                transfers = result.transfers()
                self.progress.start(len(transfers), sum(_size(a) for a in transfers))
            outcome = await self.applier.run(result.actions)
            if self.progress and show_progress:
                self.progress.finish()
            report.done += outcome.done
            for path, why in outcome.unstorable.items():
                self.unstorable[path] = (self.local.get(path), self.state.remote.get(path), why)
                report.unstorable[path] = why
                self.log.warn("cannot sync {path}: {why}; left as it is", path=path, why=why)
            report.local_changes |= {
                a.path for a in result.actions if isinstance(a, LOCAL_KINDS)
            } | {a.src for a in result.actions if isinstance(a, planner.MoveLocal)}
            report.local_changes |= outcome.dirty  # conflict copies under their real names
            if outcome.unreachable is not None:
                raise outcome.unreachable  # type: ignore[misc]
            touched = {a.path for a in result.actions} | {
                a.src for a in result.actions if isinstance(a, planner.MoveLocal)
            }
            dirty = await self._after(outcome, touched, whole=show_progress)
            if _round == ROUNDS - 1:
                report.failed = outcome.failed
                report.left = dirty

    async def _after(self, outcome: Outcome, touched: set[str], whole: bool = False) -> set[str]:
        """Refresh what the run left uncertain; return the paths to plan again.

        ``whole``: a full pass, whose run touched most of the tree (an initial sync),
        rescans the whole tree: one walk of every folder costs less than a look at
        each path on its own (10,000 paths: 0.25 s against 0.6 s). The local view it
        leaves is the same or newer; what is planned again is still the run's dirty
        paths."""
        for path in outcome.refresh:
            meta = await self.remote.metadata(path)
            self.state.set_remote_seen(path, None if meta is None else version_of(meta))
        paths = touched | outcome.dirty
        if whole and len(paths) > len(self.local) // 2:
            await self._scan(None)
        else:
            self._touched(await self._scan(paths))
        return set(outcome.dirty)

    def _guard(self, result: planner.Plan, report: CycleReport) -> None:
        """Refuse a mass deletion (an emptied or unmounted folder looks like one)."""
        local, remote = planner.deletions(result.actions)
        tracked = sum(1 for v in self.state.base.values() if not v.is_dir)
        if self.allow_mass_delete:
            return
        if planner.is_mass_deletion(remote, tracked) or planner.is_mass_deletion(local, tracked):
            kinds = (DeleteRemote, DeleteLocal)
            refused = [a for a in result.actions if isinstance(a, kinds)]
            result.actions = [a for a in result.actions if not isinstance(a, kinds)]
            report.refused_deletes += len(refused)
            self.log.error(
                "refusing to delete {count} of {tracked} files (local {local}, server {remote}):"
                " this looks like an emptied or unmounted folder. Run once with"
                " --allow-mass-delete if it is intended.",
                count=len(refused),
                tracked=tracked,
                local=local,
                remote=remote,
            )

    # -- views ----------------------------------------------------------------------------

    async def _scan(self, paths: set[str] | None) -> ScanResult:
        cache = dict(self.state.cache)
        now = time.time()
        finished = frozenset(self._finished)
        if paths is None:
            result: ScanResult = await deferToThread(self.scanner.scan, cache, now, finished)
        else:
            result = await deferToThread(self.scanner.scan_paths, paths, cache, now, finished)
        self._finished -= set(result.entries)
        self._check_folder()
        self._fold_scan(result, complete=paths is None)
        return result

    def _fold_scan(self, result: ScanResult, complete: bool) -> None:
        if complete:
            self.local = {}
            self.links = set(result.links)
            self.scanned = True
        else:
            roots = set(result.roots)
            for path in [p for p in self.local if planner.within(p, roots)]:
                del self.local[path]
            self.links = {p for p in self.links if not planner.within(p, roots)} | result.links
        with self.state.batch():
            for path, entry in result.entries.items():
                self.local[path] = entry.version
                if entry.hash != DIR_HASH:
                    known = self.state.cache.get(path)
                    if known is None or known.stat != entry.stat or known.hash != entry.hash:
                        self.state.set_cache(path, entry.hash, entry.stat)
            if complete:
                for path in [p for p in self.state.cache if p not in result.entries]:
                    if path not in result.unsettled:
                        self.state.set_cache(path, None)

    def _touched(self, scan: ScanResult) -> set[str]:
        """Paths a targeted scan may have changed: its roots and everything under them."""
        touched = set(scan.entries) | set(scan.roots)
        roots = set(scan.roots)
        for view in (self.state.base, self.state.remote):
            touched.update(p for p in view if planner.within(p, roots))
        return touched - scan.unsettled

    async def pull(self, full_list: bool) -> set[str]:
        """Bring ``state.remote`` up to date; return the paths that changed.

        Only the journal's tombstones may remove a path from ``state.remote`` while the
        base is kept. Any other way of learning the server's tree (a ``reset`` answer, a
        new index id, a server without a journal) is a re-list, and a re-list is a fresh
        merge: absence from it is "unknown", never a delete."""
        cursor = self.state.cursor
        if cursor is not None and not full_list:
            index_id, seq = cursor
            changed: set[str] = set()
            try:
                while True:
                    page = await self.remote.changes(seq, index_id)
                    if page.reset or page.index_id != index_id:
                        return await self._relist(page.index_id, page.cursor, fresh=True)
                    with self.state.batch():
                        for change in page.changes:
                            meta = change.metadata
                            origin = change.origin or ""
                            self.state.set_remote(
                                change.path, None if meta is None else version_of(meta, origin)
                            )
                            changed.add(change.path)
                        self.state.set_cursor(page.index_id, page.cursor)
                    seq, index_id = page.cursor, page.index_id
                    if not page.more:
                        return changed
            except Unreachable:
                raise
            except RemoteError as error:
                if error.status not in (400, 404, 405, 501):
                    raise
        try:
            page = await self.remote.changes(0, "")
            fresh = cursor is None or page.index_id != cursor[0]
            return await self._relist(page.index_id, page.cursor, fresh=fresh)
        except (Unreachable, BadAnswer):
            raise
        except RemoteError:
            return await self._relist(None, None, fresh=True)

    async def _relist(self, index_id: str | None, seq: int | None, *, fresh: bool) -> set[str]:
        """Replace ``state.remote`` by a full listing. ``fresh`` (the listing does not
        continue the journal this client followed) also forgets the whole base, in the
        same transaction: the next plan is a union (uploads, downloads, conflict copies)
        and cannot delete anything on either side."""
        before = dict(self.state.remote)
        forgotten = set(self.state.base) if fresh else set()
        listing = await self.remote.list_all()
        with self.state.batch():
            if fresh and self.state.base:
                self.log.warn(
                    "the server's index is new or was reset (index id {index_id}): merging"
                    " both sides afresh; nothing is deleted on either side this pass",
                    index_id=index_id,
                )
                self.state.clear_base()
            self.state.replace_remote((m.path, version_of(m)) for m in listing)
            if index_id is not None and seq is not None:
                self.state.set_cursor(index_id, seq)
        after = self.state.remote
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        return changed | forgotten

    def excluded(self, path: str, *versions: Version | None) -> bool:
        """Whether ``path`` takes no part in planning: our own files, or an ignore rule
        (``--exclude``, ``.syncignore``) covers it. The scanner never reports such paths,
        so planning them would read their absence as a local deletion."""
        if is_own_path(path):
            return True
        if self.links and planner.within(path, self.links):
            self._report_link(path, versions)
            return True
        rules = self.scanner.ignore
        if not rules:
            return False
        return rules.covers(path, any(v is not None and v.is_dir for v in versions))

    def _report_link(self, path: str, versions: tuple[Version | None, ...]) -> None:
        """A link where the server has something is a conflict left as it is: say so
        (once per link and run); neither side changes, and the base is dropped so the
        server's copy is never deleted because the client cannot see through the link."""
        remote = versions[-1] if versions else None
        if remote is None:
            return
        link = path
        while link not in self.links:
            link = link.rpartition("/")[0]
        if link in self._reported_links:
            return
        self._reported_links.add(link)
        self.log.warn(
            "conflict on {link}: a symbolic link here, {what} on the server; left alone on"
            " both sides (synclient never writes, reads or deletes through a link)",
            link=link,
            what="a folder" if link != path or remote.is_dir else "a file",
        )

    def plan(self, paths: Iterable[str]) -> planner.Plan:
        local_dirs = planner.parents(self.local)
        remote = self.state.remote
        if self.scanner.ignore or self.links:
            # A folder the server has only because of ignored content is not created here.
            visible = (p for p, v in remote.items() if not self.excluded(p, v))
            remote_dirs = planner.parents(visible)
        else:
            remote_dirs = planner.parents(remote)
        states = []
        forget: list[planner.Action] = []
        for path in sorted(set(paths)):
            base = self.state.base.get(path)
            local = self.local.get(path)
            there = remote.get(path)
            if local is None and path in local_dirs:
                local = planner.directory()
            if there is None and path in remote_dirs:
                there = planner.directory()
            stuck = self.unstorable.get(path)
            if stuck is not None and stuck[:2] == (local, there):
                continue  # reported when it failed; neither side changed since
            if self.excluded(path, base, local, there):
                # Ignored means untouched, and dropped from the base: un-ignoring it
                # later is a fresh merge for the path (union), never a delete.
                if base is not None:
                    forget.append(planner.SetBase(path, None))
                continue
            states.append(PathState(path, base, local, there))
        result = planner.plan(states, self.strategy, self.state.client_id, time.time())
        result.actions += forget
        return result

    async def verify(self) -> set[str]:
        """After a full sync: the paths where the two sides still differ."""
        async with self.lock:
            return await self._verify()

    async def _verify(self) -> set[str]:
        # The journal since the cursor, not a second full listing: the pass just
        # folded the journal in, and a reset or a new index id still re-lists (a full
        # listing of 10,000 files cost a tenth of an initial sync).
        await self.pull(full_list=False)
        await self._scan(None)
        paths = set(self.state.base) | set(self.local) | set(self.state.remote)
        result = self.plan(paths)
        return {a.path for a in result.transfers()}


def _size(action: planner.Action) -> int:
    if isinstance(action, planner.Download | planner.SaveRemoteCopy):
        return action.remote.size
    if isinstance(action, planner.Upload):
        return action.local.size
    return 0
