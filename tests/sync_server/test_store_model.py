"""The blocking store core against random operation sequences: whatever happens, the
index equals a fresh scan of the folder, and the journal replays to the listing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from caddytw.sync.core import (
    Conflict,
    LocalStoreCore,
    NameClash,
    Preconditions,
    entries_equal_scan,
)
from caddytw.sync.folder import StoreError, stage
from caddytw.sync.home import FolderUnavailable
from caddytw.sync.localfs import temp_name
from caddytw.sync.protocol import FOLDER_MARKER, Delete, Move, SyncRequest, fold_key

# "d-x" and "d0" sort just outside "d/" and its range end: children of "d" exclude them.
# "A", "D/e" and "u" + combining diaeresis clash with "a", "d" and "ü" (case, NFC).
NAMES = st.sampled_from(
    ["a", "A", "b", "c.txt", "d/e", "D/e", "d/f.txt", "d/g/h", "d-x", "d0", "x y", "ü", "u\u0308"]
)
CONTENT = st.sampled_from([b"", b"one", b"two", b"three" * 100])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(core: LocalStoreCore, path: str, data: bytes, conditions=Preconditions()):
    core.precheck(path, conditions, sha(data))
    staged = stage(core.root, path, io.BytesIO(data), sha(data), None)
    return core.commit_upload(path, staged, conditions, "tester", None)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="syncmodel-"))
        self.core = LocalStoreCore(
            self.tmp / "root", create_root=True, index_path=self.tmp / "index.db"
        )
        self.core.open()
        self.journal: dict[str, object] = {}

    def teardown(self) -> None:
        self.core.close()
        shutil.rmtree(self.tmp)

    def _drain(self) -> None:
        for change in self.core.drain():
            self.journal[change.path] = change.metadata

    @rule(path=NAMES, data=CONTENT, guard=st.sampled_from(["none", "new", "match", "stale"]))
    def upload(self, path: str, data: bytes, guard: str) -> None:
        current = self.core.index.live(path)
        conditions = {
            "none": Preconditions(),
            "new": Preconditions(if_none_match=("*",)),
            "match": Preconditions(if_match=(current.hash,) if current else ("0" * 64,)),
            "stale": Preconditions(if_match=("f" * 64,)),
        }[guard]
        try:
            meta, _status = put(self.core, path, data, conditions)
        except NameClash as clash:
            assert current is None
            existing = self.core.index.live(clash.existing)
            assert existing is not None
            parts = path.split("/")
            prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
            assert fold_key(clash.existing) in [fold_key(p) for p in prefixes]
        except Conflict as conflict:
            assert conflict.info.remote_metadata == (current.metadata() if current else None)
            if current is not None:
                assert current.hash != sha(data)  # identical content never conflicts
        except StoreError as error:
            assert error.status == 409  # a folder is in the way
        else:
            assert meta.hash == sha(data)
            assert (self.core.root / path).read_bytes() == data
        self._drain()

    @rule(path=NAMES, stale=st.booleans())
    def delete(self, path: str, stale: bool) -> None:
        try:
            self.core.delete(path, "f" * 64 if stale else None, "tester")
        except StoreError as error:
            assert error.status in (409, 412)
        self._drain()

    @rule(source=NAMES, dest=NAMES)
    def move(self, source: str, dest: str) -> None:
        request = SyncRequest((Move(source, dest),), "tester")
        response = self.core.apply_sync(request, "tester")
        assert len(response.results) == 1
        self._drain()

    @rule(path=NAMES, data=CONTENT)
    def outside_write(self, path: str, data: bytes) -> None:
        """Another program writes into the folder; a rescan picks it up."""
        target = self.core.root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                return
            target.write_bytes(data)
        except (NotADirectoryError, FileExistsError):
            return
        self.core.rescan()
        self._drain()

    @rule(path=NAMES, data=CONTENT)
    def outside_write_watched(self, path: str, data: bytes) -> None:
        """As the watcher handles it: refresh the path, rescan the new top folder only."""
        target = self.core.root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                return
            target.write_bytes(data)
        except (NotADirectoryError, FileExistsError):
            return
        top = path.split("/")[0]
        self.core.refresh([top])
        if top != path:
            self.core.rescan(top)
        self._drain()

    @rule(path=NAMES)
    def outside_delete(self, path: str) -> None:
        target = self.core.root / path
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        self.core.rescan()
        self._drain()

    @rule(path=NAMES)
    def sync_delete(self, path: str) -> None:
        self.core.apply_sync(SyncRequest((Delete(path),), "tester"), "tester")
        self._drain()

    @invariant()
    def index_equals_scan(self) -> None:
        index_view, scan_view = entries_equal_scan(self.core)
        assert index_view == scan_view

    @invariant()
    def journal_replays_to_listing(self) -> None:
        listing = {m.path: m for m in self.core.listing()[0]}
        replayed = {p: m for p, m in self.journal.items() if m is not None}
        assert set(replayed) == set(listing)
        for path, meta in replayed.items():
            assert (meta.hash, meta.is_directory) == (
                listing[path].hash,
                listing[path].is_directory,
            )

    @invariant()
    def no_temp_files(self) -> None:
        for _dir, _dirs, files in os.walk(self.core.root):
            assert not [f for f in files if f.endswith(".tmp")]


StoreMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_store_machine = StoreMachine.TestCase


def test_a_lost_index_is_never_silently_replaced(tmp_path):
    """The marker names the index id: without that index the folder is refused (503)
    instead of served under a new id; deleting the marker is the explicit way to start
    over, and the new index is then built from the folder."""
    index_path = tmp_path / "index.db"
    core = LocalStoreCore(tmp_path / "root", create_root=True, index_path=index_path)
    core.open()
    put(core, "a/b.txt", b"hello")
    put(core, "c", b"x")
    old_id = core.index.index_id
    core.close()
    assert json.loads((tmp_path / "root" / FOLDER_MARKER).read_text())["index_id"] == old_id
    index_path.unlink()
    core = LocalStoreCore(tmp_path / "root", create_root=True, index_path=index_path)
    with pytest.raises(FolderUnavailable, match="marker names index") as caught:
        core.open()
    assert caught.value.status == 503
    assert not index_path.exists()
    (tmp_path / "root" / FOLDER_MARKER).unlink()
    assert core.open() is True
    assert core.index.index_id != old_id
    assert sorted(m.path for m in core.listing()[0]) == ["a", "a/b.txt", "c"]
    page = core.changes(0, old_id, 100, None)
    assert page.reset
    core.close()


def test_only_our_own_leftover_temp_files_are_removed_on_open(tmp_path):
    """A temp file is ours when its name is signed with the index's secret; a user's
    file that merely looks like one stays, wherever it is."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    core = LocalStoreCore(root, index_path=tmp_path / "index.db")
    core.open()
    ours = root / "sub" / temp_name("f.txt", core.temp_token("sub/f.txt"))
    core.close()
    ours.write_bytes(b"partial upload")
    lookalikes = [root / ".f.0123456789abcdef.tmp", root / "sub" / ".notes.fedcba9876543210.tmp"]
    for path in lookalikes:
        path.write_bytes(b"a user's file")
    core = LocalStoreCore(root, index_path=tmp_path / "index.db")
    core.open()
    assert not ours.exists()
    assert all(path.read_bytes() == b"a user's file" for path in lookalikes)
    core.close()


class EditedAfterLookup(LocalStoreCore):
    """Another program writes ``path`` right after the store verified it: the moment
    between the check and the rename."""

    edit: tuple[str, bytes] | None = None

    def lookup(self, path):
        found = super().lookup(path)
        if self.edit is not None and self.edit[0] == path:
            (self.root / path).write_bytes(self.edit[1])
            self.edit = None
        return found


@pytest.mark.parametrize("exists", [True, False])
def test_a_direct_edit_between_check_and_rename_is_never_overwritten(tmp_path, exists):
    root = tmp_path / "root"
    root.mkdir()
    core = EditedAfterLookup(root, index_path=tmp_path / "index.db")
    core.open()
    try:
        if exists:
            put(core, "f.txt", b"v1")
        conditions = (
            Preconditions(if_match=(sha(b"v1"),)) if exists else Preconditions(if_none_match=("*",))
        )
        core.precheck("f.txt", conditions, sha(b"upload"))
        staged = stage(core.root, "f.txt", io.BytesIO(b"upload"), sha(b"upload"), None)
        core.edit = ("f.txt", b"edited directly in the folder")
        with pytest.raises(Conflict) as caught:
            core.commit_upload("f.txt", staged, conditions, "tester", None)
        assert caught.value.status == 412
        assert (root / "f.txt").read_bytes() == b"edited directly in the folder"
        assert core.index.live("f.txt").hash == sha(b"edited directly in the folder")
        assert not staged.temp_path.exists()
    finally:
        core.close()


def test_symlinks_are_refused_and_not_indexed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    core = LocalStoreCore(root, index_path=tmp_path / "index.db")
    core.open()
    assert core.listing()[0] == []
    with pytest.raises(StoreError) as caught:
        core.open_file("link/secret")
    assert caught.value.status == 403
    with pytest.raises(StoreError):
        put(core, "link/new", b"x")
    assert not (outside / "new").exists()
    core.close()


def test_an_index_from_before_fold_keys_gets_them(tmp_path):
    """An index written before the ``fold`` column existed is migrated on open: the
    column is filled in and clashes with old rows are caught."""
    import sqlite3

    core = LocalStoreCore(tmp_path / "root", create_root=True, index_path=tmp_path / "index.db")
    core.open()
    put(core, "Old.txt", b"old")
    core.close()
    db_path = tmp_path / "index.db"
    db = sqlite3.connect(db_path)
    db.execute("DROP INDEX entries_fold")
    db.execute("ALTER TABLE entries DROP COLUMN fold")
    db.commit()
    db.close()
    core = LocalStoreCore(tmp_path / "root", create_root=True, index_path=tmp_path / "index.db")
    core.open()
    try:
        with pytest.raises(NameClash) as caught:
            put(core, "old.TXT", b"new")
        assert caught.value.existing == "Old.txt"
        assert caught.value.status == 409
    finally:
        core.close()
