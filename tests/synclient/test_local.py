"""The local-side pieces on a real temporary folder: ignore rules, scanner, state, progress."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from synclient.ignore import IgnoreRules
from synclient.planner import DIR_HASH, Version
from synclient.progress import Progress
from synclient.scanner import Scanner
from synclient.state import Stat, StateDB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "expected"),
    [
        (["*.log"], "a.log", False, True),
        (["*.log"], "deep/er/a.log", False, True),
        (["*.log"], "a.logx", False, False),
        (["/build"], "build", True, True),
        (["/build"], "src/build", True, False),
        (["build/"], "src/build", True, True),
        (["build/"], "src/build", False, False),
        (["docs/*.md"], "docs/a.md", False, True),
        (["docs/*.md"], "docs/x/a.md", False, False),
        (["docs/**/*.md"], "docs/x/y/a.md", False, True),
        (["**/tmp"], "a/b/tmp", True, True),
        (["*.log", "!keep.log"], "keep.log", False, False),
        (["*.log", "!keep.log"], "other.log", False, True),
        (["# comment", "", "fil?.[ab]"], "file.b", False, True),
        (["fil?.[!ab]"], "file.b", False, False),
    ],
)
def test_ignore_rules(patterns: list[str], path: str, is_dir: bool, expected: bool) -> None:
    assert IgnoreRules(patterns).ignored(path, is_dir) is expected


def test_covers_parents() -> None:
    rules = IgnoreRules(["node_modules/"])
    assert rules.covers("web/node_modules/x/y.js", False)
    assert not rules.covers("web/src/y.js", False)


def make(root: Path, rel: str, data: bytes, age: float = 10.0) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = time.time() - age
    os.utime(path, (when, when))


def test_scan_hashes_reuses_cache_and_hides_private_names(tmp_path: Path) -> None:
    make(tmp_path, "a.txt", b"alpha")
    make(tmp_path, "d/b.bin", b"")
    make(tmp_path, "d/e/\u00e9t\u00e9.txt", b"summer")
    make(tmp_path, "skip.log", b"x")
    make(tmp_path, "d/.b.bin.0123456789abcdef.tmp", b"partial")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a.txt")
    state = StateDB(tmp_path)
    make(tmp_path, ".syncignore", b"*.log\n")
    scanner = Scanner(tmp_path, IgnoreRules.load(tmp_path))
    result = scanner.scan({}, time.time())
    versions = {p: e.version for p, e in result.entries.items()}
    assert versions["a.txt"].hash == sha(b"alpha")
    assert versions["d/b.bin"] == Version(sha(b""), 0, versions["d/b.bin"].mtime)
    assert versions["d/e/\u00e9t\u00e9.txt"].hash == sha(b"summer")
    assert versions["empty"].hash == DIR_HASH and versions["d/e"].hash == DIR_HASH
    assert set(versions) == {  # .syncignore is local, like Syncthing's .stignore
        "a.txt",
        "d",
        "d/b.bin",
        "d/e",
        "d/e/\u00e9t\u00e9.txt",
        "empty",
    }
    assert "link" in result.skipped
    # A cache entry with the same stat is trusted (proved by a deliberately wrong hash).
    entry = result.entries["a.txt"]
    state.set_cache("a.txt", "f" * 64, entry.stat)
    again = scanner.scan(dict(state.cache), time.time())
    assert again.entries["a.txt"].hash == "f" * 64
    state.close()


def test_fresh_files_are_unsettled_and_targeted_scans_report_roots(tmp_path: Path) -> None:
    make(tmp_path, "old.txt", b"old")
    make(tmp_path, "new.txt", b"being written", age=0)
    scanner = Scanner(tmp_path, IgnoreRules(), settle=5.0)
    result = scanner.scan({}, time.time())
    assert "new.txt" in result.unsettled and "new.txt" not in result.entries
    make(tmp_path, "dir/x/y.txt", b"y")
    partial = scanner.scan_paths(["dir", "gone.txt", "dir/x/y.txt"], {}, time.time())
    assert partial.roots == ["dir", "gone.txt"]
    assert set(partial.entries) == {"dir", "dir/x", "dir/x/y.txt"}


def test_state_survives_reopen(tmp_path: Path) -> None:
    state = StateDB(tmp_path)
    client = state.client_id
    with state.batch():
        state.set_base("a", Version("a" * 64, 3, 1.5))
        state.set_remote("a", Version("a" * 64, 3, 1.5, "someone"))
        state.set_cache("a", "a" * 64, Stat(3, 10, 99))
        state.set_cursor("index-1", 42)
    state.close()
    again = StateDB(tmp_path)
    assert again.client_id == client
    assert again.base["a"] == Version("a" * 64, 3, 1.5)
    assert again.remote["a"].origin == "someone"
    assert again.cached_hash("a", Stat(3, 10, 99)) == "a" * 64
    assert again.cached_hash("a", Stat(3, 11, 99)) is None
    assert again.cursor == ("index-1", 42)
    with pytest.raises(RuntimeError), again.batch():
        again.set_base("b", Version("b" * 64))
        raise RuntimeError("rolled back")
    again.close()
    assert "b" not in StateDB(tmp_path).base


def test_progress_line_and_quiet_when_not_a_tty() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(out, clock=lambda: now[0], enabled=True)
    bar.start(4, 4 << 20)
    now[0] = 2.0
    bar.add_bytes(1 << 20)
    bar.file_done("a", 1 << 20)
    assert bar.line() == "1/4 files  1.0 MiB/4.0 MiB  512.0 KiB/s  ETA 0:06"
    bar.finish()
    assert out.getvalue().endswith("\n")
    silent = io.StringIO()
    quiet = Progress(silent)
    quiet.start(1, 1)
    quiet.add_bytes(1)
    quiet.finish()
    assert silent.getvalue() == ""


def test_state_commits_are_durable(tmp_path: Path) -> None:
    """A commit must survive a power cut (issue 12: synchronous=NORMAL may roll back)."""
    state = StateDB(tmp_path)
    assert state._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    state.close()


def user_edits_while_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the user append to a file right after the applier hashed it (for its check
    that the file holds what the plan assumed): the race window of issue 12, opened
    deterministically. The hashing itself stays real."""
    from synclient import apply

    real = apply.hash_file

    def hash_then_user_edits(path: Path) -> str:
        digest = real(path)
        with open(path, "ab") as handle:
            handle.write(b" + the user's edit")
        return digest

    monkeypatch.setattr(apply, "hash_file", hash_then_user_edits)


def test_a_local_edit_during_the_check_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a local edit made between the planner's check and ``os.replace`` was
    overwritten. The edit is made to happen while the applier hashes the target (its
    check), the moment the old code's window opened."""
    from synclient.apply import Applier

    make(tmp_path, "f.txt", b"old")
    state = StateDB(tmp_path)
    applier = Applier(tmp_path, state, remote=None)  # type: ignore[arg-type]
    user_edits_while_hashed(monkeypatch)
    temp = tmp_path / ".f.txt.0123456789abcdef.tmp"
    written = applier._install(temp, "f.txt", Version(sha(b"old"), 3), 0.0, b"server bytes")
    assert written is None
    assert (tmp_path / "f.txt").read_bytes() == b"old + the user's edit"
    state.close()


def test_a_local_edit_during_the_delete_check_is_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for a delete the server asked for: the edit wins (it is uploaded
    by the next pass: a modification beats a deletion)."""
    from synclient.apply import Applier
    from synclient.planner import DeleteLocal

    make(tmp_path, "f.txt", b"old")
    state = StateDB(tmp_path)
    applier = Applier(tmp_path, state, remote=None)  # type: ignore[arg-type]
    user_edits_while_hashed(monkeypatch)
    assert not applier._remove(DeleteLocal("f.txt", Version(sha(b"old"), 3)))
    assert (tmp_path / "f.txt").read_bytes() == b"old + the user's edit"
    state.close()
