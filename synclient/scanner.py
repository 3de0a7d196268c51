"""What the local folder holds now: paths, stats and SHA-256 hashes.

Blocking by nature (directory walks, reads), so every entry point here is meant to run in
a thread (``deferToThread``); nothing touches the reactor. Hashes are reused from the
stat-keyed cache when size, mtime and inode are unchanged. A file is hashed between two
stats and counts only when they agree; a file modified within the last ``settle``
seconds is reported as *unsettled* (still being written) and left for a later pass.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from caddytw.sync.localfs import stable_hash, walk
from caddytw.sync.protocol import ProtocolError, is_reserved_name, validate_path
from synclient.folder import MARKER
from synclient.ignore import IGNORE_FILE, IgnoreRules
from synclient.planner import DIR_HASH, Version, within
from synclient.state import STATE_DIR, CacheEntry, Stat


@dataclass(frozen=True, slots=True)
class LocalEntry:
    path: str
    hash: str
    stat: Stat
    mtime: float

    @property
    def version(self) -> Version:
        return Version(self.hash, self.stat.size if self.hash != DIR_HASH else 0, self.mtime)


@dataclass(slots=True)
class ScanResult:
    """``entries`` found; ``roots`` were examined completely (anything under a root not in
    ``entries`` is gone); ``unsettled`` exist but are still changing."""

    entries: dict[str, LocalEntry] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    unsettled: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)
    links: set[str] = field(default_factory=set)
    """Symbolic links found: never followed, never synced, and nothing below them is."""


LOCAL_ONLY = frozenset({STATE_DIR, IGNORE_FILE, MARKER})
"""Top-level names that belong to this client, not to the user: never synced either way
(``.syncignore`` is local, like Syncthing's ``.stignore``)."""


def is_hidden(name: str, top_level: bool) -> bool:
    """Names the client never syncs: its own files and in-progress temp files."""
    return (top_level and name in LOCAL_ONLY) or is_reserved_name(name)


def is_own_path(path: str) -> bool:
    """Whether a sync path (from either side) is one of :func:`is_hidden`'s names or lies
    below one: such a path takes no part in planning."""
    parts = path.split("/")
    return any(is_hidden(name, index == 0) for index, name in enumerate(parts))


class Scanner:
    """Scans ``root`` with ``ignore`` rules; ``clock`` gives "now" in seconds."""

    def __init__(
        self,
        root: Path,
        ignore: IgnoreRules,
        settle: float = 0.4,
        workers: int = 4,
    ) -> None:
        self.root = root
        self.ignore = ignore
        self.settle = settle
        self.workers = workers

    def _accept(self, rel: str, name: str, is_dir: bool, result: ScanResult) -> bool:
        if is_hidden(name, "/" not in rel):
            return False
        try:
            validate_path(rel)
        except ProtocolError:
            result.skipped.append(rel)
            return False
        return not self.ignore.ignored(rel, is_dir)

    def _walk(self, rel: str, result: ScanResult, files: list[tuple[str, os.stat_result]]) -> None:
        """Collect directories (as entries) and files (for hashing) under ``rel``."""
        for entry in walk(self.root, rel, is_hidden, self.ignore.ignored):
            if entry.syncable and entry.kind == "dir":
                result.entries[entry.path] = LocalEntry(
                    entry.path, DIR_HASH, Stat.of(entry.info), entry.info.st_mtime
                )
            elif entry.syncable:
                files.append((entry.path, entry.info))
            else:  # symlinks, sockets, devices, invalid names, unreadable folders
                if entry.kind == "link":
                    result.links.add(entry.path)
                result.skipped.append(entry.path)

    def _hash_one(
        self,
        rel: str,
        first: os.stat_result,
        cache: Mapping[str, CacheEntry],
        now: float,
        finished: AbstractSet[str] = frozenset(),
    ) -> LocalEntry | str | None:
        """The entry, ``None`` when the file vanished, or ``"unsettled"``.

        A ``finished`` file (closed after writing, says the watcher) is hashed at once;
        any other recently modified one waits ``settle`` seconds, since it may still be
        open for writing. Either way the stat before and after hashing must agree."""
        key = Stat.of(first)
        known = cache.get(rel)
        if known is not None and known.stat == key:
            return LocalEntry(rel, known.hash, key, first.st_mtime)
        if rel not in finished and 0 <= now - first.st_mtime < self.settle:
            return "unsettled"
        try:
            found = stable_hash(self.root / rel)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError:  # unreadable, or a link / FIFO put in its place: a later pass
            return "unsettled"
        if found is None:
            return "unsettled"
        return LocalEntry(rel, found[1], Stat.of(found[0]), found[0].st_mtime)

    def _hash_all(
        self,
        files: list[tuple[str, os.stat_result]],
        cache: Mapping[str, CacheEntry],
        now: float,
        result: ScanResult,
        finished: AbstractSet[str] = frozenset(),
    ) -> None:
        def job(item: tuple[str, os.stat_result]) -> tuple[str, LocalEntry | str | None]:
            return item[0], self._hash_one(item[0], item[1], cache, now, finished)

        todo = [f for f in files if not _cached(f, cache)]
        done = [job(f) for f in files if _cached(f, cache)]
        if len(todo) > 1 and self.workers > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                done.extend(pool.map(job, todo))
        else:
            done.extend(map(job, todo))
        for rel, outcome in done:
            if isinstance(outcome, LocalEntry):
                result.entries[rel] = outcome
            elif outcome == "unsettled":
                result.unsettled.add(rel)

    def scan(
        self,
        cache: Mapping[str, CacheEntry],
        now: float,
        finished: AbstractSet[str] = frozenset(),
    ) -> ScanResult:
        """The whole tree."""
        result = ScanResult(roots=[""])
        files: list[tuple[str, os.stat_result]] = []
        self._walk("", result, files)
        self._hash_all(files, cache, now, result, finished)
        return result

    def scan_paths(
        self,
        paths: Iterable[str],
        cache: Mapping[str, CacheEntry],
        now: float,
        finished: AbstractSet[str] = frozenset(),
    ) -> ScanResult:
        """Only ``paths`` (each one a root; a directory is rescanned whole)."""
        result = ScanResult()
        files: list[tuple[str, os.stat_result]] = []
        taken: set[str] = set()  # result.roots as a set, without "" (it covers nothing)
        for rel in sorted(set(paths)):
            parent = rel.rpartition("/")[0]
            if parent and within(parent, taken):
                continue  # under a root already examined whole
            name = rel.rpartition("/")[2]
            link = self._link_above(rel)
            if link is not None:  # never look through a link: the link is the root
                result.links.add(link)
                result.roots.append(link)
                taken.add(link)
                continue
            try:
                info = os.stat(self.root / rel, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                result.roots.append(rel)
                if rel:
                    taken.add(rel)
                continue
            is_dir = stat_module.S_ISDIR(info.st_mode)
            if not self._accept(rel, name, is_dir, result) or self.ignore.covers(rel, is_dir):
                continue
            result.roots.append(rel)
            if rel:
                taken.add(rel)
            if is_dir:
                result.entries[rel] = LocalEntry(rel, DIR_HASH, Stat.of(info), info.st_mtime)
                self._walk(rel, result, files)
            elif stat_module.S_ISREG(info.st_mode):
                files.append((rel, info))
            elif stat_module.S_ISLNK(info.st_mode):
                result.links.add(rel)
        self._hash_all(files, cache, now, result, finished)
        return result

    def _link_above(self, rel: str) -> str | None:
        """The first proper parent of ``rel`` that is a symbolic link, if any."""
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            try:
                if os.path.islink(self.root / parent):
                    return parent
            except OSError:
                return None
        return None


def _cached(item: tuple[str, os.stat_result], cache: Mapping[str, CacheEntry]) -> bool:
    known = cache.get(item[0])
    return known is not None and known.stat == Stat.of(item[1])
