"""The engine's planning filter, in memory: whatever the three versions of a path, a
path an ignore rule covers, one of our own files, or a path at or below a symbolic
link gets no action but the forgetting of its base (issue 12, rules 2 and 4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synclient import planner
from synclient.engine import Engine
from synclient.ignore import IgnoreRules
from synclient.planner import DIR_HASH, Version
from synclient.scanner import Scanner, is_own_path
from synclient.state import StateDB

PATHS = [
    "a.log",
    "a.txt",
    "logs",
    "logs/x.txt",
    "logs/deep/y.log",
    "ext",
    "ext/in.txt",
    ".syncignore",
    ".synclient/state.db",
    ".caddytw-folder",
    "d/.syncignore",
]
RULES = ["*.log", "logs", "/a.txt", "!keep.log", "deep/**"]
VERSIONS = st.sampled_from([None, Version("1" * 64, 1), Version("2" * 64, 2), Version(DIR_HASH)])


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateDB]:
    """One state database for all examples (each example starts by emptying it)."""
    db = StateDB(tmp_path_factory.mktemp("plan"))
    yield db
    db.close()


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(PATHS), st.tuples(VERSIONS, VERSIONS, VERSIONS)),
    st.lists(st.sampled_from(RULES), max_size=3),
    st.booleans(),
)
def test_excluded_paths_get_no_action_but_a_forgotten_base(
    state: StateDB,
    triples: dict[str, tuple[Version | None, Version | None, Version | None]],
    rules: list[str],
    ext_is_link: bool,
) -> None:
    root = state.path.parent.parent
    ignore = IgnoreRules(rules)
    engine = Engine(root, state, None, Scanner(root, ignore))  # type: ignore[arg-type]
    with state.batch():
        state.clear_base()
        state.replace_remote([])
        for path, (base, local, remote) in triples.items():
            state.set_base(path, base)
            state.set_remote(path, remote)
            if local is not None:
                engine.local[path] = local
    if ext_is_link:
        engine.links = {"ext"}
    result = engine.plan(PATHS)
    for action in result.actions:
        paths = {action.path} | ({action.src} if hasattr(action, "src") else set())
        for path in paths:
            out = (
                is_own_path(path)
                or ignore.covers(path, False)
                or (ext_is_link and planner.within(path, {"ext"}))
            )
            if out:
                assert action == planner.SetBase(path, None), action
    forgotten = {a.path for a in result.actions if a == planner.SetBase(a.path, None)}
    for path, (base, _local, _remote) in triples.items():
        if base is not None and is_own_path(path):
            assert path in forgotten
