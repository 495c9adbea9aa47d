"""Intensity past the forecast: a daily profile of recent history blended with the forecast's level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.planner import JobRequest, PlannerSettings, PowerPolicy, PowerRequest, RegionForecast, plan
from green_operator.planner.extrapolate import extrapolate

HOUR = timedelta(hours=1)
DAY_SHAPE = [100.0 + 10 * h for h in range(24)]


def test_a_repeating_day_is_continued() -> None:
    out = extrapolate(DAY_SHAPE * 3, HOUR, 30)
    assert out == pytest.approx(DAY_SHAPE + DAY_SHAPE[:6])


def test_the_forecasts_last_level_fades_into_the_profile() -> None:
    windy_last_day = [v - 50 for v in DAY_SHAPE]
    out = extrapolate(DAY_SHAPE * 6 + windy_last_day, HOUR, 24 * 14)
    profile = [sum(x) / 7 for x in zip(*([DAY_SHAPE] * 6 + [windy_last_day]), strict=True)]
    first_gap = out[0] - profile[0]
    last_gap = out[-1] - profile[(24 * 14 - 1) % 24]
    assert first_gap < -30  # the still-windy next hours
    assert abs(last_gap) < 0.1 * abs(first_gap)  # two weeks on: back to the usual day


def test_never_negative() -> None:
    assert min(extrapolate([5.0] * 24 + [0.0] * 24, HOUR, 48)) >= 0.0


@pytest.mark.parametrize(
    ("known", "slot", "match"),
    [([1.0], timedelta(minutes=7), "slot"), ([], HOUR, "known"), ([float("nan")], HOUR, "known")],
)
def test_bad_input_is_refused(known: list[float], slot: timedelta, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        extrapolate(known, slot, 4)


def test_a_plan_on_extrapolated_hours_says_so() -> None:
    t0 = datetime(2024, 3, 4, tzinfo=UTC)
    timedelta(minutes=15)
    # 12 h of forecast at 300, then 36 h extrapolated with a clean night at 50 from hour 26.
    values = [300.0] * 48 + [300.0] * 56 + [50.0] * 16 + [300.0] * 72
    region = RegionForecast("a", 8, "", t0, values, extrapolated_from=48)
    settings = PlannerSettings(horizon=timedelta(hours=12), extrapolation=timedelta(hours=36), reserve_fraction=0)
    job = JobRequest("j", 1, timedelta(hours=2), t0, t0 + timedelta(hours=40), ("a",), PowerRequest(PowerPolicy.NONE))
    d = plan([job], [region], [], t0, settings)[0]
    assert d.start == t0 + timedelta(hours=26)
    assert d.extrapolated == timedelta(hours=2)
    assert "extrapolated" in d.reason
    within = plan([job], [region], [], t0, PlannerSettings(horizon=timedelta(hours=12), reserve_fraction=0))[0]
    assert within.start < t0 + timedelta(hours=12)
    assert within.extrapolated == timedelta(0)
