"""Fixtures for the tests that need a real PostgreSQL (see tests/support/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.postgres import PostgresCluster, start_cluster

if TYPE_CHECKING:
    from caddytw.tls.pgstore import PostgresStorage
    from tests.pg.test_nodes import Node


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One cluster for the whole session; skipped when PostgreSQL is not installed."""
    cluster = start_cluster()
    if cluster is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) or psycopg is not installed")
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> str:
    """The connection string of a fresh database for one test."""
    return postgres.new_database()


@pytest.fixture
def nodes(tmp_path: Path, pg_url: str) -> Iterator[tuple[Node, Node]]:
    """Two ``file_sync`` nodes on one shared folder and one PostgreSQL index."""
    from tests.pg.test_nodes import Node

    shared = tmp_path / "shared"
    first = Node(tmp_path / "node1", shared, pg_url).start()
    second = Node(tmp_path / "node2", shared, pg_url).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture
def two_storages(pg_url: str) -> Iterator[tuple[PostgresStorage, PostgresStorage]]:
    """Two nodes' ``postgres`` TLS storages on one fresh database."""
    from caddytw.tls.pgstore import PostgresStorage

    first, second = PostgresStorage(pg_url), PostgresStorage(pg_url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()
