"""``LocalFolder``, the one :class:`~caddytw.sync.blobs.FolderBlobs` today, on a real
directory: placing refuses when the path changed (and keeps the staged bytes), a new
path never overwrites something that appeared, moves and removals are what the store
records, and walks never show staging objects."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from caddytw.sync.blobs import FolderBlobs, LocalFolder
from caddytw.sync.folder import Observed, StoreError
from caddytw.sync.localfs import hash_file


def blobs_of(root: Path) -> FolderBlobs:
    return LocalFolder(root)  # checked against the Protocol by mypy here


def test_place_new_and_replace_only_when_unchanged(tmp_path: Path) -> None:
    blobs = blobs_of(tmp_path)
    staged = blobs.stage("a/b.txt", io.BytesIO(b"one"), None, None, None)
    assert [p for p, _ in blobs.walk()] == []  # staging is invisible (no parent yet: in root)
    made = blobs.make_folders("a/b.txt")
    assert [p for p, _ in made] == ["a"] and made[0][1].is_dir
    assert blobs.place(staged, "a/b.txt", lambda now: now is None) is not None
    assert (tmp_path / "a/b.txt").read_bytes() == b"one"
    first = blobs.observe("a/b.txt")
    assert first is not None and blobs.hash("a/b.txt") == (first, hash_file(tmp_path / "a/b.txt"))

    # Something appeared at a "new" path: nothing is overwritten, the staged bytes stay.
    again = blobs.stage("a/c.txt", io.BytesIO(b"two"), None, None, None)
    (tmp_path / "a/c.txt").write_bytes(b"someone else")
    assert blobs.place(again, "a/c.txt", lambda now: now is None) is None
    assert (tmp_path / "a/c.txt").read_bytes() == b"someone else"
    assert again.temp_path.exists()
    # Replacing what was observed works; replacing after a change does not.
    seen = blobs.observe("a/c.txt")
    assert blobs.place(again, "a/c.txt", lambda now: now == seen) is not None
    assert (tmp_path / "a/c.txt").read_bytes() == b"two"
    late = blobs.stage("a/c.txt", io.BytesIO(b"three"), None, None, None)
    assert blobs.place(late, "a/c.txt", lambda now: now == seen) is None
    late.discard()

    stream, observed = blobs.open_read("a/c.txt")
    with stream:
        assert stream.read() == b"two" and observed == blobs.observe("a/c.txt")


def test_folders_moves_removals_and_leftovers(tmp_path: Path) -> None:
    blobs = blobs_of(tmp_path)
    assert isinstance(blobs.make_folder("d"), Observed)
    (tmp_path / "d/f").write_bytes(b"x")
    with pytest.raises(StoreError) as refused:
        blobs.remove("d", is_dir=True)
    assert refused.value.status == 409
    blobs.move("d", "e")
    assert [p for p, _ in blobs.walk()] == ["e", "e/f"]
    assert [p for p, _ in blobs.walk("e")] == ["e/f"]
    blobs.remove("e/f", is_dir=False)
    blobs.remove("e", is_dir=True)
    assert blobs.observe("e") is None
    with pytest.raises(StoreError):
        blobs.stage("x.txt", io.BytesIO(b"abc"), "0" * 64, None, None)  # 422: wrong hash
    staged = blobs.stage("x.txt", io.BytesIO(b"abc"), None, None, "0123456789abcdef")
    assert blobs.remove_leftovers(lambda name: True, 0.0) == 1
    assert not staged.temp_path.exists()
