"""Many small downloads installed together (synclient/grouped.py and the applier's
install groups), on a real temporary folder; the byte budget in memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred

from synclient.apply import Applier
from synclient.grouped import Budget, fsync_all
from synclient.planner import Version
from synclient.remote import HashMismatch
from synclient.state import StateDB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("sync_folders", [False, True])
def test_an_install_group_treats_each_file_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_folders: bool
) -> None:
    """One group: a new file, a body that does not match its hash, a file the user
    edits while the group runs, a file in a folder that does not exist yet. Each gets
    its own outcome; nothing unverified or over a user's edit becomes visible, and the
    others are installed. ``sync_folders`` (the bulk path's groups) makes the renames
    durable in the group itself, leaving nothing for the next state commit."""
    from synclient import apply
    from synclient.apply import _Install

    (tmp_path / "edited.txt").write_bytes(b"old")
    state = StateDB(tmp_path)
    applier = Applier(tmp_path, state, remote=None)  # type: ignore[arg-type]
    real = apply.fsync_all

    edits = [b" + the user's edit"]

    def fsync_then_user_edits(paths: object) -> dict[str, OSError]:
        failed = real(paths)  # type: ignore[arg-type]
        if edits:  # once, between the temp files' fsyncs and the renames
            with open(tmp_path / "edited.txt", "ab") as handle:
                handle.write(edits.pop())
        return failed

    monkeypatch.setattr(apply, "fsync_all", fsync_then_user_edits)

    def job(name: str, body: bytes, expect: Version | None, claimed: str | None = None) -> _Install:
        temp = tmp_path / os.path.dirname(name) / f".{os.path.basename(name)}.0123456789abcdef.tmp"
        return _Install(temp, name, expect, 1_600_000_000.0, body, claimed or sha(body))

    outcomes = applier._install_group(
        [
            job("new.txt", b"new bytes", None),
            job("forged.txt", b"not what was announced", None, sha(b"announced")),
            job("edited.txt", b"server bytes", Version(sha(b"old"), 3)),
            job("fresh/dir/deep.txt", b"deep", None),
        ],
        sync_folders,
    )
    assert outcomes[0] is not None and not isinstance(outcomes[0], BaseException)
    assert (tmp_path / "new.txt").read_bytes() == b"new bytes"
    assert os.stat(tmp_path / "new.txt").st_mtime == 1_600_000_000.0
    assert isinstance(outcomes[1], HashMismatch)
    assert not (tmp_path / "forged.txt").exists()
    assert not list(tmp_path.glob(".forged.txt.*"))  # the unverified bytes were never written
    assert outcomes[2] is None  # left alone: planned again
    assert (tmp_path / "edited.txt").read_bytes() == b"old + the user's edit"
    assert (tmp_path / "fresh" / "dir" / "deep.txt").read_bytes() == b"deep"
    assert applier._renamed_in == (set() if sync_folders else {tmp_path, tmp_path / "fresh/dir"})
    state.close()


def test_an_install_never_writes_through_a_link_at_its_temp_name(tmp_path: Path) -> None:
    """Temp names are predictable (the hash's first 16 hex digits): a link planted
    there (a leftover temp file is reused) must not carry the download's bytes out of
    the folder. The file's outcome is its error; the link's target is untouched."""
    from synclient.apply import _Install

    folder = tmp_path / "folder"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not yours")
    body = b"downloaded bytes"
    temp = folder / ".a.txt.0123456789abcdef.tmp"
    temp.symlink_to(outside)
    state = StateDB(folder)
    applier = Applier(folder, state, remote=None)  # type: ignore[arg-type]
    outcomes = applier._install_group(
        [_Install(temp, "a.txt", None, 1_600_000_000.0, body, sha(body))], True
    )
    assert isinstance(outcomes[0], OSError)
    assert outside.read_bytes() == b"not yours"
    assert not (folder / "a.txt").exists()
    state.close()


def test_fsync_all_reports_each_failure(tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.bin" for i in range(20)]
    for path in files:
        path.write_bytes(b"x")
    missing = str(tmp_path / "gone.bin")
    failed = fsync_all([*map(str, files), missing])
    assert list(failed) == [missing]
    assert isinstance(failed[missing], FileNotFoundError)


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 100),
    weights=st.lists(st.integers(1, 150), min_size=1, max_size=30),
    order=st.randoms(use_true_random=False),
)
def test_budget_holds_its_limit_and_serves_in_order(
    limit: int, weights: list[int], order: object
) -> None:
    """Held bytes never exceed the limit (one call larger than the whole budget runs
    alone), callers start in the order they asked, and every caller runs."""
    budget = Budget(limit)
    started: list[int] = []
    running: dict[int, Deferred[None]] = {}

    def work(index: int) -> Deferred[None]:
        assert budget.used <= limit or len(running) == 0
        started.append(index)
        running[index] = Deferred()
        return running[index]

    finished = [budget.run(weight, work, index) for index, weight in enumerate(weights)]
    while running:
        index = order.choice(sorted(running))  # type: ignore[attr-defined]
        running.pop(index).callback(None)
    assert started == list(range(len(weights)))
    assert all(done.called for done in finished)
    assert budget.used == 0
