"""The adversarial model (see :mod:`tests.sync_safety.model`) as a pytest test: a
bounded run in CI, a long one with ``CADDYTW_SOAK=1`` (or ``bench/sync_soak.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.sync_safety.model import SyncModel, profile

pytestmark = pytest.mark.timeout(0 if os.environ.get("CADDYTW_SOAK") else 900)


def test_two_clients_and_a_server_never_lose_a_byte(tmp_path: Path) -> None:
    SyncModel.base = tmp_path
    SyncModel.sequences = 0
    run_state_machine_as_test(SyncModel, settings=profile())
    assert SyncModel.sequences >= 1
