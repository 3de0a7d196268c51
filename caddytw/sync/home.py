"""Where a served folder's index lives, and how the server knows the folder is the one
its index describes.

The index is kept out of the served tree, under Caddy's data directory
(``$XDG_DATA_HOME/caddytw/sync/<name>-<hash of the real path>/index.db``, as the TLS
storage finds it), so a ``file_server`` on the same root can never hand it out. An index
in the old place (``<root>/.caddytw-sync/index.db``) is moved there on start.

The folder carries a marker, ``<root>/.caddytw-folder``, naming its index id (as
Syncthing's ``.stfolder``). An unmounted disk leaves an empty mount point, or none: both
would look like "every file was deleted" to a rescan and then to every client. So:

- no root: refused, unless ``create_root`` and no index exists for it (a new folder);
- a marker and its index: served if their ids agree, refused otherwise;
- a marker without its index: refused (never a silently new index id for a folder that
  had one); deleting the marker is the explicit way to start over;
- an index without a marker: adopted (the marker is written) when at least one of the
  index's top-level names is in the folder, refused when none is (an empty mount point or
  another disk);
- neither (a first start, or after an upgrade with a legacy index already migrated):
  a new index, and the marker is written.

Everything blocks (index thread).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import stat
from pathlib import Path

from caddytw.sync.folder import StoreError, fsync_dir
from caddytw.sync.localfs import temp_name
from caddytw.sync.protocol import FOLDER_MARKER, INDEX_DIR_NAME
from caddytw.tls.config import default_storage_root

INDEX_FILE = "index.db"


class FolderUnavailable(StoreError):
    """The folder is missing or not the one the index describes: HTTP 503 on every
    route until it is back (checked again every few seconds)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


def default_index_path(root: Path) -> Path:
    """The index of the folder ``root`` (a real path) in Caddy's data directory."""
    key = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", root.name)[:40] or "root"
    return Path(default_storage_root()) / "sync" / f"{name}-{key}" / INDEX_FILE


def legacy_index_path(root: Path) -> Path:
    return root / INDEX_DIR_NAME / INDEX_FILE


def migrate_legacy(root: Path, index_path: Path) -> bool:
    """Move ``<root>/.caddytw-sync/index.db`` (with its WAL) to ``index_path`` through
    SQLite's backup (consistent, across filesystems), then delete the old folder; True
    when something was moved."""
    legacy = legacy_index_path(root)
    if not legacy.is_file():
        return False
    if index_path.exists():
        raise FolderUnavailable(
            f"{root}: an index exists both at {legacy} (the old place) and at {index_path}; "
            "keep one of them"
        )
    index_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = index_path.with_name(index_path.name + ".migrating")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(legacy)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, index_path)
    fsync_dir(index_path.parent)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{legacy}{suffix}")
    with contextlib.suppress(OSError):  # leave anything that is not ours
        os.rmdir(legacy.parent)
    return True


def read_marker(root: Path) -> str | None:
    """The index id the folder's marker names; ``None`` when there is no marker."""
    path = root / FOLDER_MARKER
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise FolderUnavailable(f"{path} is not a regular file")
    try:
        value = json.loads(path.read_bytes())["index_id"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FolderUnavailable(f"{path} is unreadable ({error}); fix or delete it") from None
    if not isinstance(value, str) or not value:
        raise FolderUnavailable(f"{path} names no index id; fix or delete it")
    return value


def write_marker(root: Path, index_id: str) -> None:
    """Write the marker atomically (temp file, fsync, rename, fsync the folder)."""
    body = {
        "index_id": index_id,
        "about": "caddytw file_sync folder marker: proves this folder is the synced one. "
        "Deleting it makes the server start a new index.",
    }
    temp = root / temp_name(FOLDER_MARKER, secrets.token_hex(8))
    with open(temp, "xb") as handle:
        handle.write(json.dumps(body).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, root / FOLDER_MARKER)
    fsync_dir(root)


def marker_present(root: Path) -> bool:
    """Cheap mid-run check: the root and its marker are still there."""
    try:
        return stat.S_ISREG(os.lstat(root / FOLDER_MARKER).st_mode)
    except OSError:
        return False


def missing_marker(root: Path) -> FolderUnavailable:
    return FolderUnavailable(
        f"{root}: the folder or its marker {FOLDER_MARKER} disappeared (disk unmounted?); "
        "nothing is served or recorded as deleted until it is back"
    )


def any_present(root: Path, top_level_names: list[str]) -> bool:
    return not top_level_names or any(os.path.lexists(root / name) for name in top_level_names)
