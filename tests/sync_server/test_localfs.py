"""The shared filesystem layer (both sync ends use it): byte-limited temp names, a walk
that reports links instead of following them, stable hashing, one root-prefix rule for
watcher events, and the debouncing batcher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from caddytw.sync import localfs
from caddytw.sync.protocol import is_temp_name

NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=255,
).filter(lambda s: len(s.encode()) <= 255 and s not in (".", ".."))


@given(NAMES)
def test_temp_names_fit_in_255_bytes_and_are_recognised(name: str) -> None:
    temp = localfs.temp_name(name, "0123456789abcdef")
    assert len(temp.encode("utf-8")) <= localfs.NAME_MAX
    assert is_temp_name(temp)


def test_temp_name_of_a_255_byte_utf8_name_can_be_created(tmp_path: Path) -> None:
    name = "é" * 127 + "x"  # 255 bytes, 128 characters
    assert len(name.encode()) == 255
    (tmp_path / name).write_bytes(b"legal on Linux")
    temp = tmp_path / localfs.temp_name(name, "0123456789abcdef")
    temp.write_bytes(b"so is its temp file")
    assert temp.read_bytes() == b"so is its temp file"


def test_cut_bytes_never_splits_a_character() -> None:
    assert localfs.cut_bytes("aé", 2) == "a"
    assert localfs.cut_bytes("aé", 3) == "aé"
    assert localfs.cut_bytes("€€", 5) == "€"


def make_tree(root: Path, outside: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f.txt").write_bytes(b"f")
    (root / "top.txt").write_bytes(b"t")
    (outside / "secret").write_bytes(b"s")
    (root / "d" / "link").symlink_to(outside)
    (root / "filelink").symlink_to(outside / "secret")
    os.mkfifo(root / "fifo")
    (root / "bad\\name").write_bytes(b"b")


def test_walk_reports_links_and_never_follows_them(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    make_tree(root, outside)
    found = {e.path: (e.kind, bool(e.invalid)) for e in localfs.walk(root)}
    assert found == {
        "bad\\name": ("file", True),
        "d": ("dir", False),
        "d/e": ("dir", False),
        "d/e/f.txt": ("file", False),
        "d/link": ("link", False),
        "fifo": ("special", False),
        "filelink": ("link", False),
        "top.txt": ("file", False),
    }
    order = [e.path for e in localfs.walk(root)]
    assert order.index("d") < order.index("d/e") < order.index("d/e/f.txt")
    # under= through a link (at any depth) walks nothing
    assert list(localfs.walk(root, "d/link")) == []
    (root / "via").symlink_to(root / "d")
    assert list(localfs.walk(root, "via/e")) == []


def test_walk_hidden_and_prune(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x").write_bytes(b"x")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "y").write_bytes(b"y")
    (tmp_path / ".own").write_bytes(b"o")
    paths = [
        e.path
        for e in localfs.walk(
            tmp_path,
            hidden=lambda name, top: top and name == ".own",
            prune=lambda p, d: p == "skip",
        )
    ]
    assert paths == ["keep", "keep/x"]


def test_stable_hash_refuses_links_and_folders(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    info, digest = localfs.stable_hash(tmp_path / "f") or (None, "")
    assert digest == localfs.hash_file(tmp_path / "f")
    assert info is not None and info.st_size == 3
    with pytest.raises(OSError):
        localfs.stable_hash(tmp_path / "l")
    with pytest.raises(IsADirectoryError):
        localfs.stable_hash(tmp_path)
    os.mkfifo(tmp_path / "p")
    with pytest.raises(OSError):  # and never blocks waiting for a writer
        localfs.hash_file(tmp_path / "p")


def hide_dot(name: str, top: bool) -> bool:
    return name.startswith(".")


def test_one_root_prefix_rule() -> None:
    rel = localfs.relative_event_path
    assert rel("/srv/data", "/srv/data/a/b", hide_dot) == "a/b"
    assert rel("/srv/data/", b"/srv/data/a", hide_dot) == "a"
    assert rel("/srv/data", "/srv/data2/a", hide_dot) is None
    assert rel("/srv/data", "/srv/data", hide_dot) is None
    assert rel("/srv/data", "/srv/data/a/.x/b", hide_dot) is None


def test_batcher_waits_for_quiet_but_not_forever() -> None:
    clock = Clock()
    batches: list[tuple[set[str], set[str]]] = []
    batcher = localfs.PathBatcher(
        clock, 0.1, lambda p, f, _done: batches.append((p, f)) and None, max_wait=1.0
    )
    batcher.add("a")
    clock.advance(0.05)
    batcher.add("b", new_folder=True)
    clock.advance(0.05)
    assert batches == []
    clock.advance(0.05)
    assert batches == [({"a", "b"}, {"b"})]
    for _ in range(30):  # a stream that never pauses is still delivered
        batcher.add("c")
        clock.advance(0.05)
    assert len(batches) >= 2


def test_batcher_keeps_a_refused_batch() -> None:
    clock = Clock()
    busy = [True]
    got: list[set[str]] = []

    def deliver(paths: set[str], folders: set[str], finished: set[str]) -> bool:
        if busy[0]:
            return False
        got.append(paths)
        return True

    batcher = localfs.PathBatcher(clock, 0.1, deliver)
    batcher.add("a")
    clock.advance(0.1)
    assert got == [] and batcher.pending == {"a"}
    busy[0] = False
    batcher.add("b")
    clock.advance(0.1)
    assert got == [{"a", "b"}]


def test_batcher_delivers_a_finished_file_at_once() -> None:
    """A file closed after writing is not held for the quiet window (here 10 s): the
    latency a user sees on the other machine is this delay plus one round trip."""
    clock = Clock()
    got: list[tuple[set[str], set[str]]] = []
    batcher = localfs.PathBatcher(clock, 10.0, lambda p, _f, done: got.append((p, done)) and None)
    batcher.add("a")  # IN_MODIFY while it is written
    batcher.add("b")
    batcher.add("a", finished=True)  # IN_CLOSE_WRITE
    batcher.add("c")  # a later event does not postpone the pending flush
    clock.advance(0)
    assert got == [({"a", "b", "c"}, {"a"})]
    batcher.add("d")
    clock.advance(9.9)
    assert len(got) == 1  # unfinished paths still wait for quiet
    clock.advance(0.1)
    assert got[1] == ({"d"}, set())
