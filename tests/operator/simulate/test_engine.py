"""The plan arm under capacity pressure, in miniature: a job planned first books the clean window;
one that arrives later with a tight deadline needs it too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.series import series_from_values
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings, run_baseline, run_plan
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.world import ForecastModel, World, build_world

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SLOT = timedelta(minutes=15)


def _world(capacity: int) -> World:
    # Hourly: dirty, except a clean spell from 02:00 to 06:00.
    values = ([300.0] * 2 + [50.0] * 4 + [300.0] * 18) * 3
    traces = {"a": series_from_values("a", "test", T0, timedelta(hours=1), values)}
    return build_world(
        traces,
        {"a": capacity},
        start=T0,
        end=T0 + timedelta(hours=70),
        slot=SLOT,
        gpu_model="",
        align=False,
        required_end=T0 + timedelta(hours=48),
    )


LOOSE = SimJob("loose", T0, timedelta(hours=2), 4, T0 + timedelta(hours=40), ("a",))
TIGHT = SimJob("tight", T0 + timedelta(hours=1), timedelta(hours=2), 4, T0 + timedelta(hours=5), ("a",))


def _settings(*, preemption: bool = True, batch_replan: bool = True) -> SimSettings:
    return SimSettings(
        planner=PlannerSettings(reserve_fraction=0.0),
        power=PowerRequest(PowerPolicy.NONE),
        preemption=preemption,
        batch_replan=batch_replan,
    )


def test_without_moving_deferred_jobs_the_plan_misses_what_the_baseline_meets() -> None:
    world = _world(4)
    base = run_baseline(world, [LOOSE, TIGHT], _settings())
    assert all(r.deadline_met for r in base)  # loose runs at once, tight right after it
    fixed = run_plan(world, [LOOSE, TIGHT], _settings(preemption=False), ForecastModel(world, 0.0, 0))
    assert [r.deadline_met for r in fixed.records] == [True, False]  # the failure, reproduced


def test_moving_the_deferred_job_aside_meets_both_deadlines_in_clean_hours() -> None:
    world = _world(4)
    arm = run_plan(world, [LOOSE, TIGHT], _settings(), ForecastModel(world, 0.0, 0))
    loose, tight = arm.records
    assert loose.deadline_met
    assert tight.deadline_met
    assert tight.start <= T0 + timedelta(hours=3)
    assert arm.moves >= 1  # the loose job moved aside when the tight one arrived
    clean = 4 * 0.3 * 2 * 50  # 4 GPUs x 300 W x 2 h x 50 g/kWh: both run in clean hours
    assert loose.grams == pytest.approx(clean)
    assert tight.grams == pytest.approx(clean)


@pytest.mark.parametrize("batch_replan", [True, False])
def test_every_plan_arm_variant_keeps_capacity(batch_replan: bool) -> None:
    world = _world(4)
    arm = run_plan(world, [LOOSE, TIGHT], _settings(batch_replan=batch_replan), ForecastModel(world, 0.1, 3))
    a, b = arm.records
    assert a.start + a.duration <= b.start or b.start + b.duration <= a.start  # 4 + 4 GPUs never overlap
