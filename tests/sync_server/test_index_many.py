"""The index's many-path read (one query per few hundred paths, used by batch
downloads) against the one-path read it stands for, on a real SQLite index."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.sync.index import SyncIndex

NAMES = st.text("ab/é", min_size=1, max_size=6).filter(
    lambda p: "" not in p.split("/") and not p.startswith("/")
)


@settings(max_examples=40, deadline=None)
@given(
    live=st.sets(NAMES, max_size=30),
    deleted=st.sets(NAMES, max_size=10),
    asked=st.lists(NAMES, max_size=1200),
)
def test_get_many_is_get_for_every_path(
    live: set[str], deleted: set[str], asked: list[str]
) -> None:
    """Rows found, tombstones included, none invented, whatever the number of paths
    (more than one query's worth, repeated paths, unknown ones)."""
    with tempfile.TemporaryDirectory() as folder:
        index = SyncIndex(Path(folder) / "index.db")
        with index.transaction():
            for n, path in enumerate(sorted(live | deleted)):
                index.record(path, False, n, n, n, f"{n:064x}", None)
            for path in deleted:
                index.tombstone(path, None)
        asked = asked + sorted(live | deleted)
        expected = {p: e for p in asked if (e := index.get(p)) is not None}
        assert index.get_many(asked) == expected
        assert {p for p, e in expected.items() if e.deleted} == deleted
        index.db.close()
