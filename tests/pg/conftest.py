"""Fixtures for the tests that need a real PostgreSQL (see tests/support/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresCluster, start_cluster


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
