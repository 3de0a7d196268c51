"""Where a sync folder's bytes live, behind one small interface: :class:`FolderBlobs`.

The store (:mod:`caddytw.sync.core`) decides *what* happens (preconditions, the index,
the journal, events); a ``FolderBlobs`` does the file work it asks for, and nothing
else. Today there is one implementation, :class:`LocalFolder`: a POSIX directory (a
local disk, or NFS/a cluster file system every node mounts). The interface is what an
object store would implement later; what it must guarantee is written on each method.

Paths are the folder's relative sync paths (``a/b.txt``, already validated). Every
method blocks and runs on the store's index thread or the reactor's pool, never on the
reactor thread. :class:`Observed` is the change detector: two observations of a path
that compare equal mean "unchanged since" (an object store would put its ETag or
version where ``inode``/``mtime_ns`` are).

Left outside on purpose (local-file-system specific, documented where they live): the
folder marker (:mod:`caddytw.sync.home`), the file watcher
(:func:`caddytw.sync.localfs.start_watch`) and the delta chunk cache, which reads the
folder's files by inode (:mod:`caddytw.sync.delta`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from caddytw.sync.folder import (
    Observed,
    Staged,
    StoreError,
    fsync_dir,
    hash_observed,
    observe,
    remove_temp_files,
    split_existing,
    stage,
    walk,
)


class FolderBlobs(Protocol):
    """The file work the sync store needs from the storage holding the folder."""

    def observe(self, path: str) -> Observed | None:
        """What is at ``path`` now (None: nothing, or not a regular file or folder)."""

    def hash(self, path: str) -> tuple[Observed, str] | None:
        """The SHA-256 of the file at ``path`` with the observation it belongs to, or
        None when it kept changing while being read (or vanished)."""

    def open_read(self, path: str) -> tuple[BinaryIO, Observed]:
        """An open stream of the file and the observation of exactly those bytes
        (``FileNotFoundError`` when absent)."""

    def stage(
        self,
        path: str,
        source: BinaryIO,
        expected_hash: str | None,
        modified_ns: int | None,
        token: str | None,
    ) -> Staged:
        """Stream ``source`` into a hidden, durable staging object for ``path``
        (invisible to readers and walks), verified against ``expected_hash`` (422)."""

    def place(
        self, staged: Staged, path: str, unchanged: Callable[[Observed | None], bool]
    ) -> Observed | None:
        """Make ``staged`` the content of ``path``, durably, if ``unchanged(current)``
        still holds for what is there (for a new path: nothing may have appeared; that
        check and the placing must leave no window). The new observation, or None when
        the path changed (``staged`` is then kept for the caller to retry or discard)."""

    def make_folders(self, path: str) -> list[tuple[str, Observed]]:
        """Create the missing parent folders of ``path``; the ones created, top first."""

    def make_folder(self, path: str) -> Observed:
        """Create the folder ``path`` (its parent exists)."""

    def remove(self, path: str, is_dir: bool) -> None:
        """Remove a file, or an empty folder (409 when it is not empty)."""

    def move(self, source: str, target: str) -> None:
        """Rename ``source`` (file or folder, with its content) to the absent ``target``
        (its parent exists), durably."""

    def walk(self, under: str | None = None) -> Iterator[tuple[str, Observed]]:
        """Every syncable path (below the folder ``under``), parents before children."""

    def remove_leftovers(self, ours: Callable[[str], bool], min_age: float) -> int:
        """Delete staging objects of crashed uploads (``ours(name)``: signed by this
        folder), only those untouched for ``min_age`` seconds; how many."""


class LocalFolder:
    """:class:`FolderBlobs` on a POSIX directory: temp files beside the target, hard
    links to place new paths with no window, ``rename`` to replace, ``fsync`` of the
    folders involved so a placed file survives a power cut."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def observe(self, path: str) -> Observed | None:
        return observe(self.root, path)

    def hash(self, path: str) -> tuple[Observed, str] | None:
        return hash_observed(self.root / path)

    def open_read(self, path: str) -> tuple[BinaryIO, Observed]:
        fd = os.open(self.root / path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            seen = Observed.of(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb"), seen

    def stage(
        self,
        path: str,
        source: BinaryIO,
        expected_hash: str | None,
        modified_ns: int | None,
        token: str | None,
    ) -> Staged:
        return stage(self.root, path, source, expected_hash, modified_ns, token)

    def place(
        self, staged: Staged, path: str, unchanged: Callable[[Observed | None], bool]
    ) -> Observed | None:
        temp, target = staged.temp_path, self.root / path
        if not self._place(temp, target, path, unchanged):
            return None
        fsync_dir(target.parent)
        if temp.parent != target.parent:
            fsync_dir(temp.parent)
        return Observed.of(os.lstat(target))

    def _place(
        self, temp: Path, target: Path, path: str, unchanged: Callable[[Observed | None], bool]
    ) -> bool:
        current = self.observe(path)
        if not unchanged(current):
            return False
        if current is None:
            # A new path is linked: fails if anything appeared meanwhile (no window).
            try:
                os.link(temp, target, follow_symlinks=False)
            except FileExistsError:
                return False
            except OSError as error:  # no hard links here (FAT, some FUSE): check, rename
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                    raise
                if os.path.lexists(target):
                    return False
                os.rename(temp, target)
                return True
            os.unlink(temp)
            return True
        os.rename(temp, target)
        return True

    def make_folders(self, path: str) -> list[tuple[str, Observed]]:
        parent, missing = split_existing(self.root, path)
        made = []
        for part in missing:
            parent = parent / part
            os.mkdir(parent)
            made.append((parent.relative_to(self.root).as_posix(), Observed.of(os.lstat(parent))))
        if missing:
            fsync_dir(parent.parent)
        return made

    def make_folder(self, path: str) -> Observed:
        os.mkdir(self.root / path)
        fsync_dir((self.root / path).parent)
        return Observed.of(os.lstat(self.root / path))

    def remove(self, path: str, is_dir: bool) -> None:
        target = self.root / path
        if is_dir:
            try:
                os.rmdir(target)
            except OSError as error:
                raise StoreError(409, f"{path!r} is a folder that is not empty") from error
        else:
            os.unlink(target)
        fsync_dir(target.parent)

    def move(self, source: str, target: str) -> None:
        os.rename(self.root / source, self.root / target)
        fsync_dir((self.root / target).parent)
        fsync_dir((self.root / source).parent)

    def walk(self, under: str | None = None) -> Iterator[tuple[str, Observed]]:
        for path, info in walk(self.root, under):
            yield path, Observed.of(info)

    def remove_leftovers(self, ours: Callable[[str], bool], min_age: float) -> int:
        return remove_temp_files(self.root, ours, min_age)
