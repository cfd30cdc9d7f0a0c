"""`bench/store_scale.py --ingest-rate`: when each frame is due (the schedule alone, no clock)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from store_scale import Schedule  # noqa: E402


def test_a_frame_is_due_once_its_spans_and_all_before_it_are() -> None:
    schedule = Schedule(rate=5000, start=100.0)
    assert [schedule.due(1000) for _ in range(3)] == pytest.approx([100.2, 100.4, 100.6])
    assert schedule.due(500) == pytest.approx(100.7)  # a short last frame is due sooner


def test_the_schedule_keeps_the_rate_whatever_the_frames_took() -> None:
    # Frames asked for late (a slow send) are due at their own times, already past: sent at once,
    # so the run's rate is kept; a fixed sleep after each frame would fall behind for good.
    schedule = Schedule(rate=2000, start=0.0)
    dues = [schedule.due(1000) for _ in range(10)]
    assert dues == pytest.approx([0.5 * (k + 1) for k in range(10)])
    assert schedule.spans == 10_000


def test_two_connections_share_one_schedule() -> None:
    schedule = Schedule(rate=1000, start=0.0)
    first, second = schedule.due(1000), schedule.due(1000)  # one frame from each connection
    assert (first, second) == pytest.approx((1.0, 2.0))


@pytest.mark.parametrize("rate", [0, -5, float("nan")])
def test_a_rate_not_above_zero_is_refused(rate: float) -> None:
    with pytest.raises(ValueError):
        Schedule(rate=rate, start=0.0)
