"""Fixtures shared by the synclient end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.synclient.harness import SyncServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SyncServer]:
    """A running ``file_sync`` server process on ``tmp_path/server-data``."""
    srv = SyncServer(tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()
