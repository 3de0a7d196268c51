"""The planner over its whole small input space, then over random multi-path trees.

Each plan is run against an in-memory model of both sides; the checks are the promises
of the design: the sides converge, a second plan is empty, every changed version
survives, modifications beat deletions and the strategy picks the version that keeps
the path.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synclient import planner
from synclient.planner import (
    DIR_HASH,
    DeleteLocal,
    DeleteRemote,
    Download,
    MoveLocal,
    MoveRemote,
    PathState,
    RenameLocal,
    SaveRemoteCopy,
    SetBase,
    Strategy,
    Upload,
    Version,
    conflict_name,
)

NOW = 1_700_000_000.0
ME = "clientAAAAAA"

Side = dict[str, Version]


class Model:
    """Both sides and the base, changed only through the planner's actions."""

    def __init__(self, base: Side, local: Side, remote: Side) -> None:
        self.base, self.local, self.remote = dict(base), dict(local), dict(remote)

    def states(self) -> list[PathState]:
        paths = sorted(set(self.base) | set(self.local) | set(self.remote))
        return [
            PathState(p, self.base.get(p), self.local.get(p), self.remote.get(p)) for p in paths
        ]

    def check_local(self, path: str, expect: Version | None) -> None:
        assert planner.same(self.local.get(path), expect), (path, self.local.get(path), expect)

    def check_remote(self, path: str, expect: Version | None) -> None:
        assert planner.same(self.remote.get(path), expect), (path, self.remote.get(path), expect)

    def run(self, action: planner.Action) -> None:
        if isinstance(action, Download):
            self.check_local(action.path, action.expect_local)
            self.local[action.path] = action.remote
            self.base[action.path] = action.remote
        elif isinstance(action, Upload):
            self.check_remote(action.path, action.expect_remote)
            self.remote[action.path] = action.local
            self.base[action.path] = action.local
        elif isinstance(action, DeleteLocal):
            self.check_local(action.path, action.expect_local)
            del self.local[action.path]
            self.base.pop(action.path, None)
        elif isinstance(action, DeleteRemote):
            self.check_remote(action.path, action.expect_remote)
            del self.remote[action.path]
            self.base.pop(action.path, None)
        elif isinstance(action, SaveRemoteCopy):
            self.check_remote(action.path, action.remote)
            assert action.copy not in self.local
            self.local[action.copy] = action.remote
        elif isinstance(action, RenameLocal):
            self.check_local(action.path, action.expect_local)
            assert action.copy not in self.local
            self.local[action.copy] = self.local.pop(action.path)
        elif isinstance(action, MoveLocal):
            self.check_local(action.src, action.version)
            self.check_local(action.dst, None)
            self.local[action.dst] = self.local.pop(action.src)
            self.base.pop(action.src, None)
            self.base[action.dst] = action.version
        elif isinstance(action, MoveRemote):
            self.check_remote(action.src, action.version)
            self.check_remote(action.dst, None)
            self.remote[action.dst] = self.remote.pop(action.src)
            self.base.pop(action.src, None)
            self.base[action.dst] = action.version
        elif isinstance(action, SetBase):
            if action.version is None:
                self.base.pop(action.path, None)
            else:
                self.base[action.path] = action.version
        else:  # pragma: no cover
            raise AssertionError(action)

    def sync(self, strategy: Strategy) -> planner.Plan:
        result = planner.plan(self.states(), strategy, ME, NOW)
        for action in result.actions:
            self.run(action)
        return result

    def converged(self) -> bool:
        hashes = lambda side: {p: v.hash for p, v in side.items()}  # noqa: E731
        return hashes(self.local) == hashes(self.remote) == hashes(self.base)


def converge(model: Model, strategy: Strategy) -> list[planner.Plan]:
    plans = [model.sync(strategy) for _ in range(3)]
    assert model.converged(), (model.local, model.remote, model.base)
    assert plans[-1].actions == []
    return plans


A = Version("a" * 64, 1, 10.0, "other11")
B = Version("b" * 64, 2, 20.0, "other22")
C = Version("c" * 64, 3, 30.0, "")
D = Version(DIR_HASH)
CHOICES: list[Version | None] = [None, A, B, C, D]


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize(
    ("base", "local", "remote"), list(itertools.product(CHOICES, CHOICES, CHOICES))
)
def test_every_single_path_case(
    base: Version | None, local: Version | None, remote: Version | None, strategy: Strategy
) -> None:
    path = "dir/file.txt"
    side = lambda v: {path: v} if v is not None else {}  # noqa: E731
    model = Model(side(base), side(local), side(remote))
    first = planner.plan(model.states(), strategy, ME, NOW)
    plans = converge(model, strategy)
    final = model.local.get(path)

    # Identical content never conflicts and never transfers.
    if planner.same(local, remote):
        assert first.transfers() == [] and first.conflicts == []
    # Every version that differs from the base survives somewhere.
    survivors = {v.hash for v in model.local.values()}
    for version in (local, remote):
        if version is not None and not planner.same(version, base):
            assert version.hash in survivors
    # A modification beats a deletion.
    if local is None and remote is not None and not planner.same(remote, base):
        assert planner.same(final, remote)
    if remote is None and local is not None and not planner.same(local, base):
        assert planner.same(final, local)
    # An unchanged side follows the changed one, deletions included.
    if planner.same(local, base) and not planner.same(remote, base):
        assert planner.same(final, remote)
    if planner.same(remote, base) and not planner.same(local, base):
        assert planner.same(final, local)
    # Real conflicts: the strategy decides who keeps the path; the loser is a copy.
    both_changed = not planner.same(local, base) and not planner.same(remote, base)
    real = local is not None and remote is not None and not planner.same(local, remote)
    if both_changed and real:
        assert len(first.conflicts) == 1
        conflict = first.conflicts[0]
        assert planner.is_conflict_copy(conflict.copy)
        assert conflict.copy.startswith("dir/file.sync-conflict-20231114-221320-")
        assert conflict.copy.endswith(".txt")
        if local.is_dir or remote.is_dir:
            assert final is not None and final.is_dir
        elif strategy is Strategy.KEEP_CLIENT or (
            strategy is Strategy.RENAME and local.mtime >= remote.mtime
        ):
            assert planner.same(final, local)
            assert model.local[conflict.copy] == remote
            assert conflict.copy.endswith(f"-{(remote.origin or 'server')[:7]}.txt")
        else:
            assert planner.same(final, remote)
            assert model.local[conflict.copy] == local
            assert conflict.copy.endswith(f"-{ME[:7]}.txt")
    else:
        assert first.conflicts == []
    # Nothing but bookkeeping after the first round, except uploading conflict copies.
    for later in plans[1:]:
        for action in later.transfers():
            assert isinstance(action, Upload) and planner.is_conflict_copy(action.path)


def test_conflict_names() -> None:
    assert conflict_name("a/b/report.tar.gz", 0, "abcdefghij") == (
        "a/b/report.tar.sync-conflict-19700101-000000-abcdefg.gz"
    )
    assert conflict_name(".bashrc", 0, "x") == ".bashrc.sync-conflict-19700101-000000-x"
    assert conflict_name("Makefile", 86399, "") == "Makefile.sync-conflict-19700101-235959-unknown"


def test_moves_pair_into_one_action() -> None:
    model = Model({"old": A, "gone": B}, {"new": A}, {"old": A, "gone": B, "there": C})
    result = model.sync(Strategy.KEEP_CLIENT)
    kinds = [type(a).__name__ for a in result.transfers()]
    assert kinds.count("MoveRemote") == 1 and "Upload" not in kinds
    assert "DeleteRemote" in kinds and "Download" in kinds
    converge(model, Strategy.KEEP_CLIENT)
    back = Model({"x": A}, {"x": A}, {"y/x": A})
    assert [type(a) for a in back.sync(Strategy.KEEP_CLIENT).transfers()] == [MoveLocal]


def test_order_creates_parents_first_and_deletes_children_first() -> None:
    states = [
        PathState("a/b", None, None, D),
        PathState("a", None, None, D),
        PathState("a/b/f", None, None, A),
        PathState("z", D, D, None),
        PathState("z/y", D, D, None),
        PathState("z/y/f", B, B, None),
    ]
    paths = [a.path for a in planner.plan(states).actions]
    assert paths == ["a", "a/b", "a/b/f", "z/y/f", "z/y", "z"]


def test_mass_deletion_guard() -> None:
    assert not planner.is_mass_deletion(3, 4)
    assert not planner.is_mass_deletion(60, 1000)
    assert planner.is_mass_deletion(600, 1000)
    states = [PathState(f"f{i}", A, None, A) for i in range(5)] + [PathState("d", D, None, D)]
    assert planner.deletions(planner.plan(states).actions) == (0, 5)


def test_clashes() -> None:
    groups = planner.clashes(["Readme", "README", "x", "caf\u00e9", "cafe\u0301"])
    assert sorted(map(set, groups), key=len) == [{"README", "Readme"}, {"caf\u00e9", "cafe\u0301"}]


# --- random trees ----------------------------------------------------------------------

PATHS = ["a", "b", "d/a", "d/b", "d/e/f", "x.txt"]
FILES = [A, B, C, Version("e" * 64, 0, 5.0, "zz")]
versions = st.one_of(st.none(), st.sampled_from(FILES))
sides = st.dictionaries(st.sampled_from(PATHS), st.sampled_from(FILES), max_size=len(PATHS))


@settings(max_examples=400, deadline=None)
@given(base=sides, local=sides, remote=sides, strategy=st.sampled_from(list(Strategy)))
def test_random_trees_converge_without_loss(
    base: Side, local: Side, remote: Side, strategy: Strategy
) -> None:
    model = Model(base, local, remote)
    converge(model, strategy)
    survivors = {v.hash for v in model.local.values()}
    for side in (local, remote):
        for path, version in side.items():
            if not planner.same(version, base.get(path)):
                assert version.hash in survivors, (path, version)


@settings(max_examples=200, deadline=None)
@given(
    tree=sides,
    renames=st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(PATHS)), max_size=3),
    remote_side=st.booleans(),
)
def test_renames_on_one_side_converge_to_that_side(
    tree: Side, renames: list[tuple[str, str]], remote_side: bool
) -> None:
    moved = dict(tree)
    for src, dst in renames:
        if src in moved and dst not in moved:
            moved[dst] = moved.pop(src)
    model = Model(tree, tree, moved) if remote_side else Model(tree, moved, tree)
    plans = converge(model, Strategy.KEEP_CLIENT)
    assert {p: v.hash for p, v in model.local.items()} == {p: v.hash for p, v in moved.items()}
    assert plans[0].conflicts == []


def test_parents() -> None:
    assert planner.parents(["a/b/c", "a/d", "e"]) == {"a", "a/b"}


SEGMENTS = st.sampled_from(["a", "b", "a b", "a0", "a-", "ü"])
REL_PATHS = st.one_of(st.just(""), st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join))


@given(REL_PATHS, st.sets(REL_PATHS, max_size=6))
def test_within_is_the_prefix_test_without_its_cost(path: str, roots: set[str]) -> None:
    expected = any(path == root or path.startswith(root + "/") for root in roots)
    assert planner.within(path, roots) is expected


@given(
    st.text(
        st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
        min_size=60,
        max_size=300,
    ),
    st.text(st.characters(blacklist_characters="/.\x00", blacklist_categories=("Cs",))),
)
def test_conflict_names_fit_in_255_bytes(stem: str, ext: str) -> None:
    """A conflict on a long name must yield a name the filesystem can store."""
    name = f"{stem}.{ext}" if ext else stem
    while len(name.encode("utf-8")) > 255:
        name = name[:-1]
    copy = planner.conflict_name(f"dir/{name}", 0.0, "abcdefghij")
    folder, _, base = copy.rpartition("/")
    assert folder == "dir" and ".sync-conflict-19700101-000000-abcdefg" in base
    assert len(base.encode("utf-8")) <= 255
