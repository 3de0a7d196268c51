"""The HTTP/2 control-frame budget (``caddytw.http.framebudget``) in memory."""

from __future__ import annotations

import h2.events
from hypothesis import given
from hypothesis import strategies as st

from caddytw.http.framebudget import FrameBudget, control_frames


def test_one_read_over_the_read_budget_is_a_flood() -> None:
    assert not FrameBudget(0.0, read_budget=10).spend(11, 0.0)


def test_bucket_refills_with_time_and_data_credit() -> None:
    budget = FrameBudget(0.0, burst=10, rate=1.0)
    assert budget.spend(10, 0.0)
    assert not budget.spend(1, 0.0)
    budget = FrameBudget(0.0, burst=10, rate=1.0)
    assert budget.spend(10, 0.0) and budget.spend(5, 5.0)
    budget.credit(4)
    assert budget.spend(4, 5.0)


@given(st.lists(st.integers(0, 50), max_size=200))
def test_a_steady_client_under_the_rate_is_never_cut(reads: list[int]) -> None:
    """Frames sent no faster than the rate never exceed the budget."""
    budget = FrameBudget(0.0, burst=100, rate=50.0, read_budget=50)
    now = 0.0
    for frames in reads:
        now += frames / 50.0
        assert budget.spend(frames, now)


def test_what_counts_as_a_control_frame() -> None:
    events = [
        h2.events.RemoteSettingsChanged(),
        h2.events.PingReceived(ping_data=b"12345678"),
        h2.events.WindowUpdated(stream_id=0, delta=1),
        h2.events.DataReceived(stream_id=1, data=b"", flow_controlled_length=0),
        h2.events.DataReceived(stream_id=1, data=b"x", flow_controlled_length=1),
        h2.events.RequestReceived(stream_id=1),
    ]
    assert control_frames(events) == 4
