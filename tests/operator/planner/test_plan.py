"""The planner on small hand-made cases whose right answer is clear."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from green_operator.planner import (
    Decision,
    JobRequest,
    PlannerSettings,
    PowerPolicy,
    PowerRequest,
    RegionForecast,
    Reservation,
    latest_start,
    plan,
)

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
NO_POWER = PowerRequest(PowerPolicy.NONE)
S = PlannerSettings()


def region(name: str, values: Sequence[float], capacity: int = 8, model: str = "unknown") -> RegionForecast:
    return RegionForecast(name, capacity, model, T0, list(values))


def job(
    key: str,
    *,
    gpus: int = 1,
    hours: float = 1.0,
    deadline_hours: float = 24.0,
    regions: tuple[str, ...] = ("a",),
    earliest: datetime = T0,
    power: PowerRequest = NO_POWER,
    previous: Decision | None = None,
) -> JobRequest:
    return JobRequest(
        key=key,
        gpus=gpus,
        duration=timedelta(hours=hours),
        earliest_start=earliest,
        deadline=earliest + timedelta(hours=deadline_hours),
        regions=regions,
        power=power,
        previous=previous,
    )


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# 192 slots of 15 min: dirty (300) except a clean (50) window from 02:00 to 06:00 (slots 64..79).
DIP = [300.0] * 64 + [50.0] * 16 + [300.0] * 112
FLAT = [200.0] * 192


def test_defers_to_the_clean_window_and_says_so() -> None:
    (d,) = plan([job("j", hours=2)], [region("a", DIP)], [], T0, S)
    assert d.start == at(16)
    assert d.region == "a"
    assert d.forecast_intensity == pytest.approx(50)
    assert d.baseline_start == T0
    assert d.baseline_intensity == pytest.approx(300)
    assert d.expected_grams == pytest.approx(300 / 1000 * 2 * 50)  # default 300 W, 2 h, 50 g/kWh
    assert d.baseline_grams == pytest.approx(300 / 1000 * 2 * 300)
    assert not d.deadline_at_risk
    assert d.reason == "Deferred 16h to 02:00 UTC in a: forecast 50 gCO2/kWh vs 300 now"


def test_flat_forecast_starts_now() -> None:
    (d,) = plan([job("j", hours=3)], [region("a", FLAT)], [], T0, S)
    assert d.start == T0
    assert d.reason == "Starting now in a: no cleaner window before the deadline (forecast 200 gCO2/kWh)"


def test_prefers_a_cleaner_region_now_over_waiting() -> None:
    (d,) = plan([job("j", regions=("a", "b"))], [region("a", DIP), region("b", [40.0] * 192)], [], T0, S)
    assert (d.region, d.start) == ("b", T0)
    assert d.baseline_region == "a"
    assert d.reason == "Starting now in b: forecast 40 gCO2/kWh vs 300 now in a"


def test_equal_regions_keep_the_users_order() -> None:
    regions = [region("a", FLAT), region("b", FLAT)]
    (d1,) = plan([job("j", regions=("b", "a"))], regions, [], T0, S)
    (d2,) = plan([job("j", regions=("a", "b"))], regions, [], T0, S)
    assert (d1.region, d2.region) == ("b", "a")


def test_empty_region_list_means_every_region() -> None:
    (d,) = plan([job("j", regions=())], [region("a", FLAT), region("b", [10.0] * 192)], [], T0, S)
    assert d.region == "b"


def test_deadline_too_short_starts_now_and_flags() -> None:
    (d,) = plan([job("j", hours=4, deadline_hours=3)], [region("a", DIP)], [], T0, S)
    assert d.start == T0
    assert d.deadline_at_risk
    assert d.reason == "Deadline at risk: needs 4h but only 3h remain; starting now in a"


def test_never_starts_after_the_latest_start() -> None:
    # The clean window opens at 02:00 but the job must start by 01:00.
    j = job("j", hours=2, deadline_hours=17)
    (d,) = plan([j], [region("a", DIP)], [], T0, S)
    assert d.start <= latest_start(j) == at(15)
    assert not d.deadline_at_risk


def test_mid_slot_now_starts_at_now_exactly() -> None:
    now = T0 + timedelta(minutes=7)
    (d,) = plan([job("j", earliest=T0)], [region("a", FLAT)], [], now, S)
    assert d.start == now


def test_future_earliest_start_is_respected() -> None:
    (d,) = plan([job("j", earliest=at(3))], [region("a", FLAT)], [], T0, S)
    assert d.start == at(3)


def test_capacity_goes_to_the_job_with_least_slack() -> None:
    tight = job("tight", gpus=8, hours=4, deadline_hours=20.5)  # must start by 02:30
    loose = job("loose", gpus=8, hours=4, deadline_hours=40)
    d_loose, d_tight = plan([loose, tight], [region("a", DIP, capacity=8)], [], T0, S)
    assert d_tight.start == at(16)  # the clean window
    assert d_loose.end <= d_tight.start or d_loose.start >= d_tight.end  # never both in it
    assert d_loose.forecast_intensity == pytest.approx(300)  # nothing cleaner was left
    assert d_loose.start == T0  # so, at equal cost, the earliest start
    assert not d_tight.deadline_at_risk
    assert not d_loose.deadline_at_risk


def test_reservations_block_capacity() -> None:
    busy = Reservation("a", at(16), at(20), 8)
    (d,) = plan([job("j", gpus=1, hours=2)], [region("a", DIP, capacity=8)], [busy], T0, S)
    assert not at(14) < d.start < at(20)


def test_no_room_before_the_deadline_flags_and_starts_at_the_first_free_slot() -> None:
    busy = Reservation("a", T0, at(5), 8)
    (d,) = plan([job("j", gpus=4, hours=2, deadline_hours=4)], [region("a", FLAT)], [busy], T0, S)
    assert d.deadline_at_risk
    assert d.start == at(5)
    assert d.reason.startswith("Deadline at risk: no room for 4 GPUs in a before the latest start")


def test_job_bigger_than_every_region_is_flagged() -> None:
    (d,) = plan([job("j", gpus=16)], [region("a", FLAT, capacity=8)], [], T0, S)
    assert d.deadline_at_risk
    assert d.reason.startswith("Cannot run: needs 16 GPUs")


def test_long_run_past_the_forecast_uses_its_mean() -> None:
    (d,) = plan([job("j", hours=2)], [region("a", [100.0, 300.0])], [], T0, S)
    # Two known slots (mean 200) then the mean: starting now is as good as anything.
    assert d.start == T0
    assert d.forecast_intensity == pytest.approx((100 + 300 + 6 * 200) / 8)


def test_hysteresis_keeps_a_plan_that_is_almost_as_good() -> None:
    values = [300.0] * 64 + [50.0] * 16 + [300.0] * 16 + [49.0] * 16 + [300.0] * 80
    (first,) = plan([job("j", hours=2, deadline_hours=40)], [region("a", DIP)], [], T0, S)
    assert first.start == at(16)
    again_job = job("j", hours=2, deadline_hours=40, previous=first)
    (again,) = plan([again_job], [region("a", values)], [], T0, S)
    assert again.start == at(16)
    assert again.reason.startswith("Keeping the planned start at 02:00 UTC in a")
    (fresh,) = plan([job("j", hours=2, deadline_hours=40)], [region("a", values)], [], T0, S)
    assert fresh.start == at(24)  # without a previous plan the slightly better window wins
    much_better = values[:80] + [300.0] * 16 + [10.0] * 16 + [300.0] * 80
    (moved,) = plan([again_job], [region("a", much_better)], [], T0, S)
    assert moved.start == at(24)


def test_previous_plan_past_its_time_is_replaced() -> None:
    (first,) = plan([job("j", hours=2)], [region("a", DIP)], [], T0, S)
    late_now = at(17)
    (d,) = plan([job("j", hours=2, previous=first)], [region("a", DIP)], [], late_now, S)
    assert d.start >= late_now


def test_auto_lowers_the_limit_when_the_window_allows() -> None:
    auto = PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=10)
    (d,) = plan([job("j", hours=2, power=auto)], [region("a", DIP, model="NVIDIA H100 80GB HBM3")], [], T0, S)
    assert d.power_limit_watts is not None
    assert d.power_limit_watts < 700
    assert d.expected_duration > timedelta(hours=2)
    assert "GPU limit" in d.reason
    assert "less energy" in d.reason


def test_auto_keeps_a_higher_limit_to_fit_the_clean_window_and_says_why() -> None:
    auto = PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=10)
    # A 4 h job and a 4 h clean window: any slowdown would spill into 300 g/kWh.
    (d,) = plan([job("j", hours=4, power=auto)], [region("a", DIP, model="H100")], [], T0, S)
    assert d.start == at(16)
    assert d.power_limit_watts is None or d.power_limit_watts > 600
    assert "dirtier hours" in d.reason


def test_fixed_limit_passes_through_clamped() -> None:
    fixed = PowerRequest(PowerPolicy.FIXED, watts=150)
    (d,) = plan([job("j", power=fixed)], [region("a", FLAT, model="H100")], [], T0, S)
    assert d.power_limit_watts == 200.0
    assert d.reason.endswith("GPU limit 200 W as requested")


def test_decisions_come_back_in_input_order_and_deterministic() -> None:
    jobs = [job(f"j{i}", gpus=1 + i % 3, hours=1 + i % 4, regions=("a", "b")) for i in range(12)]
    regions = [region("a", DIP, capacity=4), region("b", FLAT, capacity=4)]
    first = plan(jobs, regions, [], T0, S)
    second = plan(jobs, regions, [], T0, S)
    assert [d.key for d in first] == [j.key for j in jobs]
    assert first == second


def test_no_jobs_no_decisions() -> None:
    assert plan([], [region("a", FLAT)], [], T0, S) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gpus": 0}, "gpus must be >= 1"),
        ({"duration": timedelta(0)}, "duration"),
        ({"deadline": datetime(2024, 3, 5)}, "UTC-aware"),
        ({"regions": ("nowhere",)}, "not among the configured regions"),
    ],
)
def test_bad_jobs_are_refused_with_the_field_named(change: dict[str, object], message: str) -> None:
    bad = dataclasses.replace(job("j"), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        plan([bad], [region("a", FLAT)], [], T0, S)


def test_bad_forecasts_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        plan([job("j")], [region("a", [])], [], T0, S)
    off_grid = RegionForecast("b", 8, "x", T0 + timedelta(minutes=5), FLAT)
    with pytest.raises(ValueError, match="slot grid"):
        plan([job("j")], [region("a", FLAT), off_grid], [], T0, S)


def test_the_planner_never_imports_scipy() -> None:
    import subprocess
    import sys

    code = "import sys, green_operator.planner as p; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_slower_gpu_models_stretch_the_duration_when_a_reference_is_set() -> None:
    from datetime import UTC, datetime, timedelta

    from green_operator.planner import JobRequest, PlannerSettings, RegionForecast, plan

    now = datetime(2026, 6, 1, tzinfo=UTC)
    flat = [100.0] * 192
    h100 = RegionForecast("h100", 16, "NVIDIA-H100-80GB-HBM3", now, flat)
    l4 = RegionForecast("l4", 16, "NVIDIA-L4", now, [10.0] * 192)  # ten times cleaner
    job = JobRequest("ns/j", 1, timedelta(hours=2), now, now + timedelta(hours=40), ("l4", "h100"))
    plain = plan([job], [h100, l4], [], now, PlannerSettings())[0]
    assert plain.region == "l4"
    assert plain.expected_duration <= timedelta(hours=2, minutes=30)

    settings = PlannerSettings(reference_gpu_model="H100")
    stretched = plan([job], [h100, l4], [], now, settings)[0]
    assert stretched.region == "l4"  # still cleaner per unit of work
    assert stretched.expected_duration >= timedelta(hours=2) * (989 / 121) * 0.99
    assert "trades" not in stretched.reason or "% more time" in stretched.reason

    tight = JobRequest("ns/t", 1, timedelta(hours=2), now, now + timedelta(hours=4), ("l4", "h100"))
    on_time = plan([tight], [h100, l4], [], now, settings)[0]
    assert on_time.region == "h100"  # 16 h on an L4 would break the deadline
    assert not on_time.deadline_at_risk
