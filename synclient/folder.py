"""The folder marker: proof that the local root is the folder that was synced.

As Syncthing's ``.stfolder``: a missing marker in a folder this client synced before
means the folder is not what it was (a disk not mounted at boot leaves an empty mount
point; a restored copy may lack hidden files). Syncing into it would fill the wrong
disk or, worse, read every missing file as deleted, so the client stops instead.

The state database lives inside the folder and vanishes with it, so "synced before" is
remembered outside: a list of marked folders in ``$XDG_DATA_HOME/synclient/folders``
(``~/.local/share`` by default). A folder never seen before is new: its marker is
created with its state, and its first pass is a fresh merge that cannot delete anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.logger import Logger

MARKER = ".caddytw-folder"
"""The marker file in the root of the synced folder; never synced."""

log = Logger()


def registry() -> Path:
    """The file listing every folder this user's synclient has marked."""
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(data) / "synclient" / "folders"


def _known(root: Path) -> set[str]:
    try:
        return set(registry().read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return set()


def _remember(root: Path) -> None:
    """Add ``root`` to the registry (best effort: a read-only home only loses the
    unmounted-folder check, never data)."""
    path = registry()
    try:
        known = _known(root)
        if str(root) in known:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".folders.{os.getpid()}.tmp")
        temp.write_text("".join(f"{line}\n" for line in sorted(known | {str(root)})))
        os.replace(temp, path)
    except OSError as error:
        log.warn("cannot record {root} in {path}: {error}", root=root, path=path, error=error)


def ensure_marker(root: Path, state_exists: bool, initial_sync: bool) -> str | None:
    """Check (or create) the marker of the existing folder ``root``; a message saying
    why sync must not start, or ``None``.

    The marker is created for a new folder, for a folder holding our state from before
    markers existed, and on ``--initial-sync`` (the user says this is the folder)."""
    marker = root / MARKER
    if os.path.lexists(marker):
        if not marker.is_file() or marker.is_symlink():
            return f"{marker} is not a regular file"
        _remember(root)
        return None
    if str(root) in _known(root) and not state_exists and not initial_sync:
        return (
            f"the folder marker {MARKER} is missing in {root}, which was synced before:"
            " is a disk not mounted, or was the folder replaced? Nothing was changed."
            " If this is the folder to sync, run once with --initial-sync (a fresh merge"
            " that deletes nothing)"
        )
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, b"synclient folder marker: do not delete\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        return f"cannot create the folder marker {marker}: {error.strerror}"
    _remember(root)
    return None
