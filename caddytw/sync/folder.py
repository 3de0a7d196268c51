"""Blocking file-system work for the sync store: safe path resolution, hashing, atomic
staging of uploads, and walking the folder.

Everything here blocks and must run off the reactor thread. Nothing here knows about
the index: :mod:`caddytw.sync.store` combines the two.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from caddytw.sync.localfs import CHUNK, stable_hash, temp_name
from caddytw.sync.localfs import walk as localfs_walk
from caddytw.sync.protocol import ProtocolError, is_reserved_name, is_temp_name, validate_path


class StoreError(Exception):
    """A refused store operation with the HTTP status that describes it best."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def keeps_work(error: BaseException) -> bool:
    """Whether a transaction that ends in ``error`` still commits: a refusal (412, 409,
    404, ...) is an answer, not a failure, so what was learned on the way (a change
    another program made, recorded by a lookup) is kept; anything else (a bug, a full
    disk, the folder or the database gone: 503) rolls back."""
    return isinstance(error, StoreError) and error.status != 503


@dataclass(frozen=True)
class Observed:
    """What the disk holds at one path: enough to notice a change without rehashing."""

    is_dir: bool
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, info: os.stat_result) -> Observed:
        is_dir = stat.S_ISDIR(info.st_mode)
        return cls(is_dir, 0 if is_dir else info.st_size, info.st_mtime_ns, info.st_ino)


@dataclass(frozen=True)
class Staged:
    """An upload written to a hidden temp file, hashed and fsynced, not yet visible."""

    temp_path: Path
    hash: str
    size: int

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)


def checked_path(value: str) -> str:
    """:func:`validate_path` with the store's error type (400)."""
    try:
        return validate_path(value)
    except ProtocolError as error:
        raise StoreError(400, f"invalid path: {error.message}") from None


def lstat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def split_existing(root: Path, path: str) -> tuple[Path, list[str]]:
    """The deepest existing directory on the way to ``path`` (excluding its last part)
    and the parent parts still missing below it.

    Refuses (403) when an existing part is a symbolic link (it could lead out of the
    root) and (409) when a parent is a file.
    """
    parts = path.split("/")
    current = root
    for index, part in enumerate(parts[:-1]):
        candidate = current / part
        info = lstat_or_none(candidate)
        if info is None:
            return current, parts[index:-1]
        if stat.S_ISLNK(info.st_mode):
            raise StoreError(403, f"{'/'.join(parts[: index + 1])!r} is a symbolic link")
        if not stat.S_ISDIR(info.st_mode):
            raise StoreError(409, f"{'/'.join(parts[: index + 1])!r} is a file, not a folder")
        current = candidate
    return current, []


def observe(root: Path, path: str) -> Observed | None:
    """The state of ``path`` on disk, ``None`` when absent; refuses symlinks (403)."""
    parent, missing = split_existing(root, path)
    if missing:
        return None
    info = lstat_or_none(parent / path.rsplit("/", 1)[-1])
    if info is None:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise StoreError(403, f"{path!r} is a symbolic link")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise StoreError(403, f"{path!r} is not a regular file or folder")
    return Observed.of(info)


def hash_observed(path: Path) -> tuple[Observed, str] | None:
    """:func:`~caddytw.sync.localfs.stable_hash` in the store's terms: ``None`` when the
    file kept changing, vanished, or is no longer a regular file."""
    try:
        found = stable_hash(path)
    except OSError:
        return None
    return None if found is None else (Observed.of(found[0]), found[1])


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage(
    root: Path,
    path: str,
    source: BinaryIO,
    expected_hash: str | None,
    modified_ns: int | None,
    token: str | None = None,
) -> Staged:
    """Stream ``source`` into ``.<name>.<token>.tmp`` beside the target (or in its
    deepest existing ancestor when its folder does not exist yet; ``token`` random when
    not given, else the store's signed one), hashing as it goes;
    verify ``expected_hash`` (422), fsync, and set the modification time.

    The temp file is removed on every failure.
    """
    directory, _missing = split_existing(root, path)
    name = path.rsplit("/", 1)[-1]
    temp = directory / temp_name(name, token or secrets.token_hex(8))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb", closefd=False) as sink:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                sink.write(chunk)
                size += len(chunk)
            sink.flush()
            os.fsync(fd)
        os.close(fd)
        fd = -1
        actual = digest.hexdigest()
        if expected_hash is not None and actual != expected_hash:
            raise StoreError(422, f"body SHA-256 is {actual}, the request said {expected_hash}")
        if modified_ns is not None:
            os.utime(temp, ns=(modified_ns, modified_ns), follow_symlinks=False)
        return Staged(temp, actual, size)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Staged(temp, "", 0).discard()
        raise


def hidden(name: str, top_level: bool) -> bool:
    """Names of the server's own (never synced, never listed)."""
    return is_reserved_name(name)


def walk(root: Path, under: str | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """Every syncable path under ``root`` with its ``lstat``, parents before children;
    only those strictly below the folder ``under`` (a relative path) when given.

    Skips symbolic links, special files, reserved names (the index, temp files) and
    names that are not valid sync paths (e.g. not UTF-8, with a backslash).
    """
    for entry in localfs_walk(root, under or "", hidden):
        if entry.syncable:
            yield entry.path, entry.info


def remove_temp_files(root: Path, ours: Callable[[str], bool], min_age: float = 0.0) -> int:
    """Delete leftover temp files of ours (uploads cut by a crash): regular files named
    like :func:`~caddytw.sync.localfs.temp_name` *and* signed by this folder's index
    (``ours``), never through a link. A user's ``.notes.0123456789abcdef.tmp`` stays.
    With ``min_age``, only those whose inode changed (``st_ctime``: written to, or their
    time set) longer ago than that many seconds: younger ones may be another node's
    upload in flight."""
    removed = 0
    now = time.time()
    for entry in localfs_walk(root, validate=False):
        if min_age and now - entry.info.st_ctime < min_age:
            continue
        if entry.kind == "file" and is_temp_name(entry.name) and ours(entry.name):
            try:
                os.unlink(root / entry.path)
                removed += 1
            except OSError as error:
                if error.errno != errno.ENOENT:
                    raise
    return removed
