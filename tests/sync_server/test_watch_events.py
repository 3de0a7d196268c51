"""How the server's folder watcher turns watchdog events into refreshes: parent-folder
"modified" noise is dropped (it made every upload rescan the whole tree), folders that
appear are rescanned below themselves, and only the outermost of nested ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from caddytw.sync.core import LocalStoreCore
from caddytw.sync.folder import hidden
from caddytw.sync.localfs import FolderEvents
from caddytw.sync.scanner import outermost


class FakeReactor:
    def callFromThread(self, work: Any, *args: Any) -> None:
        work(*args)


def dispatched_all(root: Path, *events: Any) -> list[tuple[str, bool, bool]]:
    calls: list[tuple[str, bool, bool]] = []
    handler = FolderEvents(
        str(root), hidden, lambda path, new, done: calls.append((path, new, done)), FakeReactor()
    )
    for event in events:
        handler.dispatch(event)
    return calls


def dispatched(root: Path, *events: Any) -> list[tuple[str, bool]]:
    return [(path, new) for path, new, _done in dispatched_all(root, *events)]


def test_closed_after_writing_and_moved_in_files_are_finished(tmp_path: Path) -> None:
    """The client and the server act on these at once instead of waiting for quiet."""
    root = str(tmp_path)
    calls = dispatched_all(
        tmp_path,
        FileModifiedEvent(f"{root}/a.txt"),
        FileClosedEvent(f"{root}/a.txt"),
        FileMovedEvent(f"{root}/.b.0123456789abcdef.tmp", f"{root}/b.txt"),
        DirMovedEvent(f"{root}/old", f"{root}/new"),
    )
    assert calls == [
        ("a.txt", False, False),
        ("a.txt", False, True),
        ("b.txt", False, True),
        ("old", False, False),
        ("new", True, False),
    ]


def test_folder_modified_events_are_ignored(tmp_path: Path) -> None:
    root = str(tmp_path)
    calls = dispatched(
        tmp_path,
        DirModifiedEvent(f"{root}/d"),
        DirModifiedEvent(root),
        FileModifiedEvent(f"{root}/d/f.txt"),
    )
    assert calls == [("d/f.txt", False)]


def test_new_folders_are_marked_for_a_subtree_rescan(tmp_path: Path) -> None:
    root = str(tmp_path)
    calls = dispatched(
        tmp_path,
        DirCreatedEvent(f"{root}/new"),
        DirMovedEvent(f"{root}/old", f"{root}/moved"),
        FileCreatedEvent(f"{root}/new/x"),
        FileMovedEvent(f"{root}/new/.x.0123456789abcdef.tmp", f"{root}/new/y"),
    )
    assert calls == [
        ("new", True),
        ("old", False),
        ("moved", True),
        ("new/x", False),
        ("new/y", False),
    ]


def test_events_outside_the_root_or_on_reserved_names_are_dropped(tmp_path: Path) -> None:
    root = str(tmp_path / "root")
    calls = dispatched(
        tmp_path / "root",
        FileCreatedEvent(f"{tmp_path}/elsewhere"),
        FileCreatedEvent(f"{root}/.caddytw-sync/index.db"),
        FileCreatedEvent(f"{root}/.f.0123456789abcdef.tmp"),
        FileCreatedEvent(f"{root}2/f"),  # a sibling sharing the root's name as a prefix
        FileCreatedEvent(root),
    )
    assert calls == []


PARTS = st.sampled_from(["a", "b", "a b", "a0", "a-"])


@given(st.sets(st.lists(PARTS, min_size=1, max_size=3).map("/".join), max_size=8))
def test_outermost_keeps_exactly_the_folders_no_other_one_contains(folders: set[str]) -> None:
    kept = outermost(folders)
    assert kept == sorted(kept)
    for folder in folders:
        containing = [k for k in kept if folder == k or folder.startswith(k + "/")]
        assert len(containing) == 1
    for folder in kept:
        assert not any(folder.startswith(other + "/") for other in folders)


def test_subtree_rescan_records_a_folder_filled_at_once_and_nothing_else(
    tmp_path: Path,
) -> None:
    core = LocalStoreCore(tmp_path / "root", create_root=True, index_path=tmp_path / "index.db")
    core.open()
    try:
        (core.root / "a" / "b").mkdir(parents=True)
        (core.root / "a" / "b" / "f").write_bytes(b"1")
        (core.root / "a" / "g").write_bytes(b"2")
        (core.root / "a0").write_bytes(b"sibling, not below a")
        core.refresh(["a"])
        changes = core.rescan("a")
        assert sorted(c.path for c in changes) == ["a/b", "a/b/f", "a/g"]
        assert core.index.live("a0") is None
        (core.root / "a" / "g").unlink()
        assert [c.path for c in core.rescan("a")] == ["a/g"]
        assert core.index.live("a/g") is None
    finally:
        core.close()


def test_subtree_rescan_does_not_follow_a_symlinked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    core = LocalStoreCore(tmp_path / "root", create_root=True, index_path=tmp_path / "index.db")
    core.open()
    try:
        (core.root / "link").symlink_to(outside)
        assert core.rescan("link") == []
        assert core.index.live("link/secret") is None
    finally:
        core.close()
