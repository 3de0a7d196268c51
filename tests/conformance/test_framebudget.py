"""The HTTP/2 control-frame budget (``caddytw.http.framebudget``) in memory."""

from __future__ import annotations

from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given
from hypothesis import strategies as st

from caddytw.http.framebudget import FrameBudget, FrameScanner


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


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAMES = [
    (SettingsFrame(0).serialize(), 1),
    (PingFrame(0, opaque_data=b"12345678").serialize(), 1),
    (WindowUpdateFrame(1, window_increment=5).serialize(), 1),
    (RstStreamFrame(1, error_code=8).serialize(), 1),
    (DataFrame(1, data=b"").serialize(), 1),  # empty, not ending the stream
    (DataFrame(1, data=b"", flags=["END_STREAM"]).serialize(), 0),
    (DataFrame(1, data=b"x" * 300).serialize(), 0),
    (HeadersFrame(1, data=b"\x82", flags=["END_HEADERS"]).serialize(), 0),
    (b"\x00\x00\x02\x42\x00\x00\x00\x00\x01ab", 1),  # an unknown type
]


@given(
    st.lists(st.sampled_from(FRAMES), max_size=30),
    st.lists(st.integers(0, 400), max_size=10),
)
def test_scanner_counts_control_frames_however_the_bytes_are_split(
    frames: list[tuple[bytes, int]], cuts: list[int]
) -> None:
    stream = PREFACE + b"".join(frame for frame, _ in frames)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    scanner = FrameScanner()
    assert sum(scanner.control_frames(piece) for piece in pieces) == sum(n for _, n in frames)
