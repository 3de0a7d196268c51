"""The PostgreSQL index behaves as the SQLite one: the same operations give the same
rows, journal pages, cursors and resets (hypothesis drives both side by side), and it
keeps its promises across connections (sequence order, the rescan lock, errors)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caddytw.config.errors import ConfigError
from caddytw.postgres import Database, check_connection_string
from caddytw.sync.index import Index, SyncIndex
from caddytw.sync.pgindex import IndexUnavailable, PgLocation, PgSyncIndex

PATHS = ["a", "a/b", "a/b/c.txt", "A", "b.txt", "é.txt", "e\u0301.txt", "z/y"]
_schemas = itertools.count()


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    try:
        yield db
    finally:
        db.close()


def fresh_pg(database: Database) -> PgSyncIndex:
    return PgLocation(database, f"t{next(_schemas)}").open(False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


operation = st.one_of(
    st.tuples(
        st.just("record"),
        st.sampled_from(PATHS),
        st.booleans(),
        st.integers(0, 3),
        st.integers(0, 2**63 - 1),  # SQLite's INTEGER is signed 64-bit
        st.sampled_from(["c1", None]),
    ),
    st.tuples(st.just("tombstone"), st.sampled_from(PATHS), st.sampled_from(["c2", None])),
    st.tuples(st.just("touch"), st.sampled_from(PATHS), st.integers(0, 9)),
    st.tuples(st.just("cursor"), st.sampled_from(["x", "y"]), st.integers(0, 30)),
    st.tuples(st.just("purge"), st.integers(0, 3)),
    st.tuples(st.just("tick")),
)


def apply(index: Index, clock: Clock, op: tuple[Any, ...]) -> object:
    kind = op[0]
    if kind == "tick":
        clock.now += 1
        return None
    if kind == "purge":
        return index.purge_tombstones(clock.now - op[1])
    with index.transaction():
        if kind == "record":
            _, path, is_dir, content, inode, origin = op
            entry = index.record(path, is_dir, content, 7, inode, f"h{content}", origin)
            return (entry.seq, entry.op)
        if kind == "tombstone":
            tomb = index.tombstone(op[1], op[2])
            return None if tomb is None else tomb.seq
        if kind == "touch":
            index.touch(op[1], op[2], op[2])
            return None
        index.set_client_cursor(op[1], op[2])
        return None


def view(index: Index) -> object:
    pages = [
        index.changes(since, None, limit)
        for since in sorted({0, 1, index.seq // 2, index.seq, index.seq + 1})
        for limit in (1, 1000)
    ]
    return (
        index.seq,
        index.all_live(),
        index.top_level_live(),
        [index.children(path) for path in PATHS],
        [index.clash(path) for path in PATHS],
        [index.get(path) for path in PATHS],
        [(page.cursor, page.changes, page.more, page.reset) for page in pages],
        [index.client_cursor(name) for name in ("x", "y")],
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operation, max_size=25))
def test_postgres_index_matches_sqlite(
    database: Database, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    clock_sql, clock_pg = Clock(), Clock()
    lite = SyncIndex(tmp_path_factory.mktemp("lite") / "index.db", clock_sql)
    pg = fresh_pg(database)
    pg._clock = clock_pg
    try:
        for op in ops:
            assert apply(lite, clock_sql, op) == apply(pg, clock_pg, op), op
        assert view(lite) == view(pg)
    finally:
        lite.close()
        pg.close()


def test_a_reopened_index_keeps_its_identity(database: Database) -> None:
    location = PgLocation(database, "same")
    assert not location.exists()
    first = location.open(False)
    assert first.created and location.exists()
    with first.transaction():
        first.record("f", False, 1, 1, 2**64 - 1, "h", None)  # st_ino is unsigned
    second = location.open(True)
    assert not second.created
    assert (second.index_id, second.temp_secret, second.seq) == (
        first.index_id,
        first.temp_secret,
        1,
    )
    assert second.live("f") is not None and second.live("f").inode == 2**64 - 1  # type: ignore[union-attr]
    assert PgLocation(database, "other").open(False).index_id != first.index_id


def test_sequence_numbers_follow_commit_order_across_connections(database: Database) -> None:
    """Writers on separate connections (as separate nodes) never commit seq N+1 before
    N: a reader's 'changes since' misses nothing."""
    indexes = [fresh_pg(database)]
    indexes.append(PgSyncIndex(database, indexes[0].schema))
    errors: list[BaseException] = []

    def write(index: PgSyncIndex, name: str) -> None:
        try:
            for number in range(30):
                with index.transaction():
                    index.record(f"{name}{number}", False, number, 1, 1, "h", name)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(index, name))
        for index, name in zip(indexes, ("p", "q"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    page = indexes[0].changes(0, None, 1000)
    assert [change.seq for change in page.changes] == list(range(1, 61))
    assert page.cursor == 60


def test_one_rescan_at_a_time(database: Database) -> None:
    first = fresh_pg(database)
    second = PgSyncIndex(database, first.schema)
    assert first.try_lock_rescan()
    assert not second.try_lock_rescan()
    first.unlock_rescan()
    assert second.try_lock_rescan()
    second.close()  # closing releases the lock too
    assert first.try_lock_rescan()
    first.unlock_rescan()


def test_a_refusal_keeps_what_was_learned_and_a_failure_rolls_back(database: Database) -> None:
    from caddytw.sync.folder import StoreError

    index = fresh_pg(database)
    with pytest.raises(StoreError), index.serialized():
        index.record("seen", False, 1, 1, 1, "h", None)
        raise StoreError(412, "refused")
    with pytest.raises(OSError), index.serialized():
        index.record("lost", False, 1, 1, 1, "h", None)
        raise OSError("disk full")
    assert [entry.path for entry in index.all_live()] == ["seen"]


def test_an_unreachable_database_is_a_clear_503() -> None:
    from tests.support.ports import free_port

    database = Database(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    database.pool.timeout = 2
    try:
        with pytest.raises(IndexUnavailable) as caught:
            PgLocation(database, "x").exists()
    finally:
        database.close()
    assert caught.value.status == 503
    assert "unavailable" in caught.value.message and "127.0.0.1" in caught.value.message


@pytest.mark.parametrize(
    "value",
    ["", "not a connection string", "postgresql://[broken", "host=x port=abc", 5],
)
def test_a_bad_connection_string_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        check_connection_string(value, "apps.http.x.index.connection_string")
    assert caught.value.path == "apps.http.x.index.connection_string"


def test_file_sync_config_names_the_path_of_a_bad_index(tmp_path: Path) -> None:
    from caddytw.config.reader import ObjectReader
    from caddytw.handlers.file_sync import index_location

    def error_of(config: dict[str, Any]) -> ConfigError:
        with pytest.raises(ConfigError) as caught:
            index_location(ObjectReader(config, "handle[0].index"))
        return caught.value

    assert error_of({"module": "redis"}).path == "handle[0].index.module"
    assert (
        error_of({"module": "postgres", "connection_string": "nope"}).path
        == "handle[0].index.connection_string"
    )
    assert (
        error_of({"module": "postgres", "connection_string": "host=h", "name": "Bad-Name"}).path
        == "handle[0].index.name"
    )
    assert error_of({"module": "postgres", "connection_string": "host=h", "x": 1}).path == (
        "handle[0].index.x"
    )
    assert index_location(ObjectReader({}, "i")) is None
