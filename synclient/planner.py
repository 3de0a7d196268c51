"""Three-way sync decisions, without any IO.

Every path has up to three versions: the *base* (what both sides held the last time this
client saw them agree), the *local* file and the *remote* file. Comparing the two current
sides alone cannot tell "deleted here" from "created there"; comparing each of them with
the base can. This module turns those triples into actions and conflicts. It imports no
Twisted and touches no disk, so the whole decision space is tested exhaustively in memory.

Rules (see ``shared/SYNC-DESIGN.md``):

- a side equal to the base is unchanged; the changed side wins;
- a modification beats a deletion (the file comes back);
- both sides modified differently is a conflict: one version keeps the path, the other
  is kept as ``<stem>.sync-conflict-YYYYMMDD-HHMMSS-<client7>.<ext>``; nothing is lost;
- identical content is never a conflict.
"""

from __future__ import annotations

import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeAlias

NAME_BYTES = 255
"""The longest file name (one path segment) in bytes on common filesystems."""

DIR_HASH = "<dir>"
"""The pseudo-hash of a directory: two directories are always "the same content"."""


class Strategy(Enum):
    """Which version keeps the path when both sides changed a file differently."""

    KEEP_CLIENT = "keep-client"
    """The local version keeps the path; the server's becomes a conflict copy."""
    KEEP_SERVER = "keep-server"
    """The server's version keeps the path; the local one becomes a conflict copy."""
    RENAME = "rename"
    """The most recently modified version keeps the path, the other one is renamed."""


@dataclass(frozen=True, slots=True)
class Version:
    """One side's view of a path. Equality that matters for decisions is ``hash`` alone."""

    hash: str
    size: int = 0
    mtime: float = 0.0
    origin: str = ""
    """For remote versions: the id of the client whose bytes these are (may be empty)."""

    @property
    def is_dir(self) -> bool:
        return self.hash == DIR_HASH


def directory() -> Version:
    return Version(DIR_HASH)


def same(a: Version | None, b: Version | None) -> bool:
    """Whether two versions hold the same content (both absent counts as the same)."""
    if a is None or b is None:
        return a is b
    return a.hash == b.hash


@dataclass(frozen=True, slots=True)
class PathState:
    path: str
    base: Version | None
    local: Version | None
    remote: Version | None


# --- actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Download:
    """Make the local path hold ``remote`` (a file's bytes, or a directory).

    Only valid while the local path still matches ``expect_local``."""

    path: str
    remote: Version
    expect_local: Version | None


@dataclass(frozen=True, slots=True)
class Upload:
    """Make the server's path hold ``local``, stating the server version it replaces."""

    path: str
    local: Version
    expect_remote: Version | None


@dataclass(frozen=True, slots=True)
class DeleteLocal:
    path: str
    expect_local: Version


@dataclass(frozen=True, slots=True)
class DeleteRemote:
    path: str
    expect_remote: Version


@dataclass(frozen=True, slots=True)
class SaveRemoteCopy:
    """Download the server's version of ``path`` into the new local file ``copy``."""

    path: str
    copy: str
    remote: Version


@dataclass(frozen=True, slots=True)
class RenameLocal:
    """Move the local file aside to ``copy`` (a conflict copy): its bytes stay local."""

    path: str
    copy: str
    expect_local: Version


@dataclass(frozen=True, slots=True)
class MoveLocal:
    """The server moved ``src`` to ``dst``: do the same locally instead of re-downloading."""

    src: str
    dst: str
    version: Version

    @property
    def path(self) -> str:
        return self.dst


@dataclass(frozen=True, slots=True)
class MoveRemote:
    """This client moved ``src`` to ``dst``: ask the server to move instead of re-uploading."""

    src: str
    dst: str
    version: Version

    @property
    def path(self) -> str:
        return self.dst


@dataclass(frozen=True, slots=True)
class SetBase:
    """Both sides agree: remember ``version`` (or forget the path when ``None``)."""

    path: str
    version: Version | None


Action: TypeAlias = (
    Download
    | Upload
    | DeleteLocal
    | DeleteRemote
    | SaveRemoteCopy
    | RenameLocal
    | MoveLocal
    | MoveRemote
    | SetBase
)


@dataclass(frozen=True, slots=True)
class Conflict:
    """Both sides changed ``path`` differently; ``copy`` holds the version that lost."""

    path: str
    local: Version
    remote: Version
    winner: str
    """``"local"`` or ``"remote"``."""
    copy: str


@dataclass(slots=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def transfers(self) -> list[Action]:
        """The actions that change either side (everything but ``SetBase``)."""
        return [a for a in self.actions if not isinstance(a, SetBase)]


# --- conflict copy names ---------------------------------------------------------------


def conflict_name(path: str, when: float, client: str) -> str:
    """``dir/stem.sync-conflict-YYYYMMDD-HHMMSS-<client7>.ext`` for ``dir/stem.ext``.

    ``when`` is a UTC timestamp. The extension is the last suffix, so ``a.tar.gz`` becomes
    ``a.tar.sync-conflict-...gz``; a dot file such as ``.bashrc`` has no extension. The
    stem (then the extension) is shortened, by whole characters, so the name stays within
    255 UTF-8 bytes: a conflict on a long name must not produce a name no one can store.
    """
    folder, _, name = path.rpartition("/")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when))
    tag = (client or "unknown")[:7]
    dot = name.rfind(".")
    if dot > 0:
        stem, ext = name[:dot], name[dot:]
    else:
        stem, ext = name, ""
    middle = f".sync-conflict-{stamp}-{tag}"
    room = NAME_BYTES - len(middle.encode("utf-8"))
    while len(ext.encode("utf-8")) > room // 2:
        ext = ext[:-1]
    while len((stem + ext).encode("utf-8")) > room:
        stem = stem[:-1]
    new = f"{stem}{middle}{ext}"
    return f"{folder}/{new}" if folder else new


def is_conflict_copy(path: str) -> bool:
    return ".sync-conflict-" in path.rpartition("/")[2]


# --- decisions -------------------------------------------------------------------------


def decide(
    state: PathState, strategy: Strategy, client_id: str, now: float
) -> tuple[list[Action], Conflict | None]:
    """The actions for one path, in the order they must run."""
    path, base, local, remote = state.path, state.base, state.local, state.remote
    if same(local, remote):
        if local is None:
            return ([SetBase(path, None)] if base is not None else []), None
        if base is None or base != local:
            return [SetBase(path, local)], None
        return [], None
    if same(local, base):
        # Only the server changed.
        if remote is None:
            assert local is not None
            return [DeleteLocal(path, local)], None
        return [Download(path, remote, local)], None
    if same(remote, base):
        # Only this client changed.
        if local is None:
            assert remote is not None
            return [DeleteRemote(path, remote)], None
        return [Upload(path, local, remote)], None
    # Both changed, differently.
    if local is None:
        assert remote is not None
        return [Download(path, remote, None)], None  # a modification beats a deletion
    if remote is None:
        return [Upload(path, local, None)], None
    return _conflict(path, local, remote, strategy, client_id, now)


def _conflict(
    path: str, local: Version, remote: Version, strategy: Strategy, client_id: str, now: float
) -> tuple[list[Action], Conflict]:
    remote_tag = remote.origin or "server"
    if local.is_dir:
        # A directory here, a file there: the file is kept beside the directory.
        copy = conflict_name(path, now, remote_tag)
        actions: list[Action] = [
            SaveRemoteCopy(path, copy, remote),
            DeleteRemote(path, remote),
            Upload(path, local, None),
        ]
        return actions, Conflict(path, local, remote, "local", copy)
    if remote.is_dir:
        copy = conflict_name(path, now, client_id)
        return [RenameLocal(path, copy, local), Download(path, remote, None)], Conflict(
            path, local, remote, "remote", copy
        )
    if strategy is Strategy.RENAME:
        keep_local = local.mtime >= remote.mtime
    else:
        keep_local = strategy is Strategy.KEEP_CLIENT
    if keep_local:
        copy = conflict_name(path, now, remote_tag)
        return [SaveRemoteCopy(path, copy, remote), Upload(path, local, remote)], Conflict(
            path, local, remote, "local", copy
        )
    copy = conflict_name(path, now, client_id)
    return [RenameLocal(path, copy, local), Download(path, remote, None)], Conflict(
        path, local, remote, "remote", copy
    )


def plan(
    states: Iterable[PathState],
    strategy: Strategy = Strategy.KEEP_CLIENT,
    client_id: str = "",
    now: float = 0.0,
    *,
    detect_moves: bool = True,
) -> Plan:
    """Decide every path, pair deletes with creations of the same bytes into moves, order."""
    result = Plan()
    singles: list[list[Action]] = []
    for state in states:
        actions, conflict = decide(state, strategy, client_id, now)
        if conflict is not None:
            result.conflicts.append(conflict)
        singles.append(actions)
    if detect_moves:
        singles = _pair_moves(singles)
    result.actions = order([a for group in singles for a in group])
    return result


def _pair_moves(groups: list[list[Action]]) -> list[list[Action]]:
    """Replace a lone delete plus a lone creation of the same file content by a move."""
    remote_deletes: dict[str, list[int]] = defaultdict(list)
    local_deletes: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        if len(group) != 1:
            continue
        action = group[0]
        if isinstance(action, DeleteRemote) and not action.expect_remote.is_dir:
            remote_deletes[action.expect_remote.hash].append(index)
        elif isinstance(action, DeleteLocal) and not action.expect_local.is_dir:
            local_deletes[action.expect_local.hash].append(index)
    if not remote_deletes and not local_deletes:
        return groups
    out = list(groups)
    for index, group in enumerate(groups):
        if len(group) != 1:
            continue
        action = group[0]
        if (
            isinstance(action, Upload)
            and action.expect_remote is None
            and remote_deletes.get(action.local.hash)
        ):
            source = remote_deletes[action.local.hash].pop()
            src = groups[source][0]
            assert isinstance(src, DeleteRemote)
            out[source] = []
            out[index] = [MoveRemote(src.path, action.path, action.local)]
        elif (
            isinstance(action, Download)
            and action.expect_local is None
            and local_deletes.get(action.remote.hash)
        ):
            source = local_deletes[action.remote.hash].pop()
            src_local = groups[source][0]
            assert isinstance(src_local, DeleteLocal)
            out[source] = []
            out[index] = [MoveLocal(src_local.path, action.path, action.remote)]
    return out


def _depth(path: str) -> int:
    return path.count("/")


def order(actions: Sequence[Action]) -> list[Action]:
    """Run order: moves, then directory creations (parents first), files, then deletions
    (files before directories, deepest first), then the bookkeeping.

    Actions for one path keep their relative order (the sort is stable and each phase
    contains at most one kind of a path's actions, except conflicts, which stay together).
    """

    def phase(action: Action) -> tuple[int, int]:
        if isinstance(action, MoveLocal | MoveRemote):
            return (0, 0)
        if isinstance(action, Download | Upload) and (
            action.remote.is_dir if isinstance(action, Download) else action.local.is_dir
        ):
            return (1, _depth(action.path))
        if isinstance(action, DeleteLocal | DeleteRemote):
            version = (
                action.expect_local if isinstance(action, DeleteLocal) else action.expect_remote
            )
            return (3 if version.is_dir else 2, -_depth(action.path))
        if isinstance(action, SetBase):
            return (4, 0)
        return (1, 10_000)

    grouped: dict[str, list[Action]] = {}
    for action in actions:
        grouped.setdefault(action.path, []).append(action)
    # A conflict's actions (copy, then overwrite) must not be split by the sort: sort
    # groups by their first action's phase.
    units = sorted(grouped.values(), key=lambda group: phase(group[0]))
    return [a for unit in units for a in unit]


# --- guards ----------------------------------------------------------------------------


def deletions(actions: Iterable[Action]) -> tuple[int, int]:
    """How many files the plan deletes (local, remote); directories are not counted."""
    local = remote = 0
    for action in actions:
        if isinstance(action, DeleteLocal) and not action.expect_local.is_dir:
            local += 1
        elif isinstance(action, DeleteRemote) and not action.expect_remote.is_dir:
            remote += 1
    return local, remote


def is_mass_deletion(count: int, tracked: int, minimum: int = 50, fraction: float = 0.5) -> bool:
    """Whether deleting ``count`` of ``tracked`` files looks like an emptied/unmounted root.

    Small folders are never guarded (deleting 3 of 4 files is ordinary work)."""
    return count >= minimum and count > fraction * tracked


def fold_key(path: str) -> str:
    """The key under which two names clash on case-insensitive or normalising filesystems."""
    return unicodedata.normalize("NFC", path).casefold()


def clashes(paths: Iterable[str]) -> list[list[str]]:
    """Groups of distinct paths that would be one file on macOS/Windows."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        groups[fold_key(path)].append(path)
    return [sorted(group) for group in groups.values() if len(group) > 1]


def within(path: str, roots: set[str] | frozenset[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or lies below one (``""`` as a root matches
    only itself, as a prefix test on ``root + "/"`` would).

    Walks up ``path``'s own parents, so checking many paths against many roots costs
    their depth, not ``len(paths) * len(roots)`` prefix comparisons."""
    if path in roots:
        return True
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in roots:
            return True
        cut = path.rfind("/", 0, cut)
    return False


def parents(paths: Iterable[str]) -> set[str]:
    """Every proper parent folder of ``paths``.

    Listings carry only files and *empty* directories, so a folder with content is known
    only through its children: callers fill it in as a directory before deciding, so a
    folder that merely became non-empty never looks deleted."""
    found: set[str] = set()
    for path in paths:
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            if parent in found:
                break
            found.add(parent)
            cut = parent.rfind("/")
    return found
