"""The one filesystem layer of both sync ends: the ``file_sync`` server
(:mod:`caddytw.sync`) and ``synclient`` use these functions, so a fix lands once.

- :class:`StatKey` / :func:`stable_hash`: a file's hash counts only when the stat before
  and after hashing agree (another program may be writing it); the key (size, mtime_ns,
  inode) is what spares rehashing unchanged files.
- :func:`walk`: every entry below a folder, parents first, never through a symbolic
  link; links, special files, invalid names and unreadable folders are *reported*
  (so a caller can say why a path is missing) instead of silently dropped.
- :func:`temp_name`: the hidden ``.<name>.<token>.tmp`` an atomic write streams into,
  cut to the 255-byte name limit in bytes (never in characters).
- :func:`start_watch` / :class:`PathBatcher`: watchdog events turned into relative
  paths with one root-prefix rule, and collected until the folder is quiet.

Everything except :class:`PathBatcher` blocks and belongs off the reactor thread.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from caddytw.sync.protocol import ProtocolError, validate_path

CHUNK = 1 << 20
#: Longest file name (one path segment) Linux, macOS and Windows filesystems accept, in
#: bytes of UTF-8.
NAME_MAX = 255
#: Bytes :func:`temp_name` adds around a name: ``.`` + name + ``.`` + 16 hex + ``.tmp``.
TEMP_EXTRA = 1 + 1 + 16 + 4

#: ``hidden(name, top_level)``: names a caller never syncs (its own files).
Hidden = Callable[[str, bool], bool]


@dataclass(frozen=True, slots=True)
class StatKey:
    """The stat fields that say "this file has not changed since it was hashed"."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, result: os.stat_result) -> StatKey:
        return cls(result.st_size, result.st_mtime_ns, result.st_ino)


# -- names ------------------------------------------------------------------------------


def cut_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form has at most ``limit`` bytes
    (never splitting a character)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def temp_name(name: str, token: str) -> str:
    """The hidden temp name ``.<name>.<token>.tmp`` an atomic write streams into, with
    ``name`` cut so the whole stays within :data:`NAME_MAX` bytes (a 255-byte name is
    legal, so its temp name must be shorter than "name + suffix").

    ``token`` must be 16 lowercase hex characters (``secrets.token_hex(8)``).
    """
    if not re.fullmatch(r"[0-9a-f]{16}", token):
        raise ValueError("token must be 16 lowercase hex characters")
    return f".{cut_bytes(name, NAME_MAX - TEMP_EXTRA)}.{token}.tmp"


def signed_temp_token(secret: bytes, name: str) -> str:
    """A :func:`temp_name` token only the holder of ``secret`` makes: 8 random hex
    characters and 8 of an HMAC over them and the (cut) name. A leftover temp file is
    then provably ours, and a user's file that merely looks like one is never deleted."""
    nonce = secrets.token_hex(4)
    return nonce + _temp_mac(secret, nonce, name)


def signed_by(secret: bytes, temp_file_name: str) -> bool:
    """Whether ``temp_file_name`` (``.<name>.<token>.tmp``) was made with ``secret``."""
    if len(temp_file_name) < TEMP_EXTRA + 1 or not temp_file_name.endswith(".tmp"):
        return False
    token = temp_file_name[-20:-4]
    name = temp_file_name[1:-21]
    return hmac.compare_digest(token[8:], _temp_mac(secret, token[:8], name))


def _temp_mac(secret: bytes, nonce: str, name: str) -> str:
    cut = cut_bytes(name, NAME_MAX - TEMP_EXTRA)
    message = nonce.encode() + b"/" + cut.encode("utf-8", "surrogateescape")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:8]


# -- hashing ----------------------------------------------------------------------------


def hash_stream(source: BinaryIO, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and size of what ``source`` yields (at most ``limit`` bytes)."""
    digest = hashlib.sha256()
    size = 0
    while limit is None or size < limit:
        chunk = source.read(CHUNK if limit is None else min(CHUNK, limit - size))
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def open_regular(path: Path | str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``path`` and its stat, never through
    a symbolic link (``ELOOP``) and never blocking on a FIFO put in its place; raises
    ``IsADirectoryError`` for a folder and ``OSError`` for anything else not a file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        raise OSError(f"{path}: not a regular file")
    return fd, info


def hash_file(path: Path | str) -> str:
    """The SHA-256 of a regular file (not through a link)."""
    with os.fdopen(open_regular(path)[0], "rb") as source:
        return hash_stream(source)[0]


def stable_hash(path: Path | str, attempts: int = 3) -> tuple[os.stat_result, str] | None:
    """Hash a file another program may be writing: the stat before (of the open file)
    and after hashing (of the path) must agree, else retry.

    Returns the agreed stat and the hash; ``None`` when it never settled. Raises
    ``OSError`` when the path is gone, a folder, a link or not a regular file.
    """
    for _ in range(attempts):
        fd, before = open_regular(path)
        with os.fdopen(fd, "rb") as source:
            digest, _ = hash_stream(source)
        after = os.lstat(path)
        if StatKey.of(after) == StatKey.of(before) and after.st_mode == before.st_mode:
            return before, digest
    return None


# -- walking ----------------------------------------------------------------------------

Kind = Literal["dir", "file", "link", "special", "unreadable"]


@dataclass(frozen=True, slots=True)
class WalkEntry:
    """One entry below the walked folder.

    ``kind``: ``dir`` / ``file`` (syncable when ``invalid`` is empty), ``link`` (a
    symbolic link: never followed), ``special`` (FIFO, socket, device) or ``unreadable``
    (a folder that could not be listed; ``info`` is its stat). ``invalid`` says why the
    name is not a valid sync path (e.g. not UTF-8); such a folder is not entered.
    """

    path: str
    name: str
    kind: Kind
    info: os.stat_result
    invalid: str = ""

    @property
    def syncable(self) -> bool:
        return self.kind in ("dir", "file") and not self.invalid


def _kind(mode: int) -> Kind:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "special"


def _plain_folder(root: Path, under: str) -> os.stat_result | None:
    """The stat of folder ``under`` when neither it nor any folder on the way to it is a
    symbolic link (or a file); ``None`` otherwise."""
    current = root
    info = None
    for part in under.split("/") if under else []:
        current = current / part
        try:
            info = os.lstat(current)
        except OSError:
            return None
        if not stat.S_ISDIR(info.st_mode):
            return None
    return info if info is not None else os.stat(root)


def _open_folder(path: Path, expected: os.stat_result | None) -> int:
    """A descriptor of the folder ``path``, refusing a link put in its place since it
    was seen (``expected``: same device and inode, or it is skipped)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    if expected is not None:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino):
            os.close(fd)
            raise NotADirectoryError(path)
    return fd


def walk(
    root: Path,
    under: str = "",
    hidden: Hidden = lambda name, top_level: False,
    prune: Callable[[str, bool], bool] | None = None,
    validate: bool = True,
) -> Iterator[WalkEntry]:
    """Every entry strictly below the folder ``under`` of ``root`` (a relative path,
    ``""`` for the whole tree), parents before children, names sorted within a folder.

    ``hidden(name, top_level)`` drops a name silently (and does not enter it);
    ``prune(path, is_dir)`` too (an ignore rule), asked only for valid names.
    With ``validate`` every name is checked as a sync path (:func:`validate_path`).
    Symbolic links are reported, never followed: not the walked folders, not any
    folder on the way to ``under``, not one swapped in while walking.
    """
    start = _plain_folder(root, under)
    if start is None:
        return
    stack: list[tuple[str, os.stat_result]] = [(under, start)]
    while stack:
        folder, expected = stack.pop()
        try:
            fd = _open_folder(root / folder if folder else root, expected)
        except (FileNotFoundError, NotADirectoryError, OSError) as error:
            if isinstance(error, PermissionError):
                name = folder.rpartition("/")[2]
                yield WalkEntry(folder or ".", name, "unreadable", expected)
            continue
        try:
            with os.scandir(fd) as entries:
                items = sorted(entries, key=lambda e: e.name)
                found: list[WalkEntry] = []
                for item in items:
                    if hidden(item.name, not folder):
                        continue
                    try:
                        info = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    path = f"{folder}/{item.name}" if folder else item.name
                    kind = _kind(info.st_mode)
                    problem = ""
                    if validate:
                        try:
                            validate_path(path)
                        except ProtocolError as error:
                            problem = error.message
                    if not problem and prune is not None and prune(path, kind == "dir"):
                        continue
                    found.append(WalkEntry(path, item.name, kind, info, problem))
        finally:
            os.close(fd)
        for entry in found:
            yield entry
        for entry in reversed(found):
            if entry.kind == "dir" and not entry.invalid:
                stack.append((entry.path, entry.info))


# -- watching ---------------------------------------------------------------------------


#: The watchdog events that can change a folder's content.
CONTENT_EVENTS = (
    "DirCreatedEvent",
    "DirDeletedEvent",
    "DirMovedEvent",
    "FileClosedEvent",
    "FileCreatedEvent",
    "FileDeletedEvent",
    "FileModifiedEvent",
    "FileMovedEvent",
)


def content_events() -> list[Any]:
    """:data:`CONTENT_EVENTS` as classes, for ``Observer.schedule(..., event_filter=...)``:
    without a filter inotify also reports every open and read-only close (each download,
    each hash). watchdog is imported only when a watcher starts."""
    from watchdog import events

    return [getattr(events, name) for name in CONTENT_EVENTS]


def relative_event_path(root: str, raw: str | bytes, hidden: Hidden) -> str | None:
    """``raw`` (an absolute path from watchdog) relative to ``root`` with ``/``
    separators; ``None`` for the root itself, for anything outside it (``/srv/data2``
    is not inside ``/srv/data``) and for hidden names at any depth."""
    text = os.fsdecode(raw)
    prefix = root.rstrip(os.sep) + os.sep
    if not text.startswith(prefix):
        return None
    rel = text[len(prefix) :].strip(os.sep).replace(os.sep, "/")
    if not rel:
        return None
    parts = rel.split("/")
    if any(hidden(name, index == 0) for index, name in enumerate(parts)):
        return None
    return rel


class FolderEvents:
    """A watchdog handler: relative paths into the reactor thread, as
    ``report(path, folder_appeared, finished)``."""

    def __init__(
        self, root: str, hidden: Hidden, report: Callable[[str, bool, bool], None], reactor: Any
    ):
        self.root = root
        self.hidden = hidden
        self.report = report
        self.reactor = reactor

    def dispatch(self, event: Any) -> None:
        is_dir = bool(event.is_directory)
        kind = getattr(event, "event_type", "")
        # "Folder modified" comes with every event inside it, which is reported itself.
        if is_dir and kind in ("modified", "closed", "opened", "closed_no_write"):
            return
        for which in ("src_path", "dest_path"):
            raw = getattr(event, which, "") or ""
            rel = relative_event_path(self.root, raw, self.hidden) if raw else None
            if rel is None:
                continue
            # A folder that appears may hold content no event will report.
            appeared = is_dir and (kind == "created" or which == "dest_path")
            # A file closed after writing (IN_CLOSE_WRITE) or renamed into place is
            # complete now: no settle window needed to guess that it is.
            finished = not is_dir and (kind == "closed" or which == "dest_path")
            self.reactor.callFromThread(self.report, rel, appeared, finished)


def start_watch(
    root: Path | str, hidden: Hidden, report: Callable[[str, bool, bool], None], reactor: Any
) -> Any:
    """Watch ``root`` recursively (content-changing events only) and call
    ``report(relative_path, folder_appeared, finished)`` in the reactor thread
    (``finished``: a file closed after writing or moved into place); returns the
    started observer (``stop()`` and ``join()`` it)."""
    from watchdog.observers import Observer

    observer = Observer()
    observer.schedule(
        FolderEvents(str(root), hidden, report, reactor),  # type: ignore[arg-type]
        str(root),
        recursive=True,
        event_filter=content_events(),
    )
    observer.daemon = True
    observer.start()
    return observer


class PathBatcher:
    """Reported paths collected until ``delay`` seconds pass without a new one (at most
    ``max_wait`` after the first, so a folder that never stops changing is still
    looked at), then handed to ``deliver(paths, new_folders, finished)`` in one batch.

    A *finished* path (closed after writing, or moved into place) is delivered at
    once, with whatever else is pending: waiting longer cannot make it more complete,
    and every millisecond here is latency another client sees.

    ``deliver`` returning ``False`` means "busy, not now": the batch is kept and
    offered again after ``delay``. Runs in the reactor thread.
    """

    def __init__(
        self,
        reactor: Any,
        delay: float,
        deliver: Callable[[set[str], set[str], set[str]], bool | None],
        max_wait: float | None = None,
    ) -> None:
        self.reactor = reactor
        self.delay = delay
        self.max_wait = max_wait if max_wait is not None else max(1.0, 10 * delay)
        self.deliver = deliver
        self.pending: set[str] = set()
        self.folders: set[str] = set()
        self.finished: set[str] = set()
        self._call: Any = None
        self._first = 0.0

    def add(self, path: str, new_folder: bool = False, finished: bool = False) -> None:
        if not self.pending:
            self._first = self.reactor.seconds()
        self.pending.add(path)
        if new_folder:
            self.folders.add(path)
        if finished:
            self.finished.add(path)
            wait = 0.0
        else:
            left = self._first + self.max_wait - self.reactor.seconds()
            wait = min(self.delay, max(0.0, left))
        if self._call is not None and self._call.active():
            # A finished path already asked for a flush at once: never postpone that.
            if finished or not self.finished:
                self._call.reset(wait)
        else:
            self._call = self.reactor.callLater(wait, self._flush)

    def _flush(self) -> None:
        self._call = None
        if not self.pending:
            return
        paths, folders, finished = self.pending, self.folders, self.finished
        self.pending, self.folders, self.finished = set(), set(), set()
        if self.deliver(paths, folders, finished) is False:
            self.pending |= paths
            self.folders |= folders
            self.finished |= finished
            self._call = self.reactor.callLater(self.delay, self._flush)

    def cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
