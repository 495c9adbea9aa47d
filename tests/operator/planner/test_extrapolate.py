"""Intensity past the forecast: a daily profile of recent history blended with the forecast's level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.planner import (
    Decision,
    JobRequest,
    PlannerSettings,
    PowerPolicy,
    PowerRequest,
    RegionForecast,
    plan,
)
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


MONDAY = datetime(2024, 3, 4, tzinfo=UTC)


def test_weekdays_and_weekends_get_profiles_of_their_own() -> None:
    # Two weeks from a Monday: 300 on weekdays, 100 at weekends; then a week past the forecast.
    week = [300.0] * 24 * 5 + [100.0] * 24 * 2
    out = extrapolate(week * 2, HOUR, 24 * 7, start=MONDAY)
    assert out[: 24 * 5] == pytest.approx([300.0] * 24 * 5)
    assert out[24 * 5 :] == pytest.approx([100.0] * 24 * 2)
    alike = extrapolate(week * 2, HOUR, 24 * 7)  # no dates: every day alike
    assert max(alike[24 * 5 :]) > 200


def test_a_day_type_missing_from_the_history_takes_every_days_profile() -> None:
    out = extrapolate(DAY_SHAPE * 5, HOUR, 24 * 2, start=MONDAY)  # Monday to Friday only
    assert out == pytest.approx(DAY_SHAPE * 2)


def test_day_types_follow_the_start_time() -> None:
    # From Wednesday 12:00: each value is 300 on a weekday, 100 at a weekend (UTC), by its own time.
    start = MONDAY + timedelta(days=2, hours=12)

    def truth(i: int) -> float:
        return 100.0 if (start + i * HOUR).weekday() >= 5 else 300.0

    out = extrapolate([truth(i) for i in range(24 * 14)], HOUR, 24 * 7, start=start)
    assert out == pytest.approx([truth(24 * 14 + i) for i in range(24 * 7)])


def _previous(start: datetime, extrapolated: timedelta) -> Decision:
    d = timedelta(hours=2)
    return Decision("j", "a", start, None, d, 1.0, 100.0, "a", start, 1.0, 100.0, False, "", extrapolated)


@pytest.mark.parametrize(("extrapolated", "moves"), [(timedelta(0), False), (timedelta(hours=2), True)])
def test_a_plan_made_on_extrapolated_hours_is_not_held_by_the_hysteresis(extrapolated: timedelta, moves: bool) -> None:
    # The previous plan (01:00-03:00) is now forecast at 100; 04:00-06:00 at 98: 2 % better, under
    # the 5 % hysteresis. A plan made on forecasts stays; one made on extrapolated hours moves.
    values = [100.0] * 16 + [98.0] * 8 + [100.0] * 24
    region = RegionForecast("a", 8, "", MONDAY, values)
    settings = PlannerSettings(horizon=timedelta(hours=12), reserve_fraction=0, hysteresis_fraction=0.05)
    previous = _previous(MONDAY + HOUR, extrapolated)
    job = JobRequest(
        "j",
        1,
        timedelta(hours=2),
        MONDAY,
        MONDAY + timedelta(hours=10),
        ("a",),
        PowerRequest(PowerPolicy.NONE),
        previous,
    )
    d = plan([job], [region], [], MONDAY, settings)[0]
    assert d.start == (MONDAY + 4 * HOUR if moves else MONDAY + HOUR)
