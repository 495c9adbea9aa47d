"""The plan arm is the operator's reconciler on a fake clock, in miniature: a job planned first books
the clean window; one that arrives later with a tight deadline needs it too."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from green_operator.api.spec import TrainingJobSpec, parse_spec
from green_operator.carbon.series import series_from_values
from green_operator.config import OperatorConfig
from green_operator.controller import driver, replans
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate import operator
from green_operator.simulate.engine import PlanArm, RunRecord, SimSettings, run_baseline
from green_operator.simulate.generator import generate_jobs
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.operator import run_operator
from green_operator.simulate.world import ForecastModel, World, build_world

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SLOT = timedelta(minutes=15)


def _world(capacity: int, values: list[float] | None = None) -> World:
    # Hourly: dirty, except a clean spell from 02:00 to 06:00.
    values = values or ([300.0] * 2 + [50.0] * 4 + [300.0] * 18) * 3
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


def _settings(replan: timedelta | None = None) -> SimSettings:
    s = SimSettings(planner=PlannerSettings(reserve_fraction=0.0), power=PowerRequest(PowerPolicy.NONE))
    return s if replan is None else SimSettings(s.planner, s.power, replan)


def _run(world: World, jobs: list[SimJob], settings: SimSettings | None = None, error: float = 0.0) -> PlanArm:
    return run_operator(world, jobs, settings or _settings(), ForecastModel(world, error, 3))


def _never_overlap(records: list[RunRecord], gpus: list[int], capacity: int) -> None:
    for r in records:
        busy = sum(g for q, g in zip(records, gpus, strict=True) if q.start <= r.start < q.start + q.duration)
        assert busy <= capacity


def test_the_default_cadence_is_the_operators() -> None:
    assert SimSettings().replan_interval == OperatorConfig.replan_interval == timedelta(minutes=10)
    assert operator.MAX_SLEEP == driver.MAX_SLEEP


def test_a_simulated_job_is_the_green_training_job_a_user_would_write() -> None:
    job = SimJob("j", T0, timedelta(minutes=90), 8, T0 + timedelta(hours=7), ("a", "b"))
    spec = parse_spec(operator.gtj_body(job, PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=5)), ("a", "b"))
    assert isinstance(spec, TrainingJobSpec)
    assert (spec.gpus, spec.estimated_duration, spec.deadline, spec.regions) == (
        8,
        timedelta(minutes=90),
        T0 + timedelta(hours=7),
        ("a", "b"),
    )
    assert spec.created == T0
    assert spec.power == PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=5)


def test_moving_the_deferred_job_aside_meets_both_deadlines_in_clean_hours() -> None:
    world = _world(4)
    arm = _run(world, [LOOSE, TIGHT])
    loose, tight = arm.records
    assert loose.deadline_met
    assert tight.deadline_met
    assert tight.start <= T0 + timedelta(hours=3)
    assert arm.moved_aside == 1  # the loose job moved aside when the tight one arrived
    assert arm.moves >= 1
    clean = 4 * 0.3 * 2 * 50  # 4 GPUs x 300 W x 2 h x 50 g/kWh: both run in clean hours
    assert loose.grams == pytest.approx(clean)
    assert tight.grams == pytest.approx(clean)
    assert arm.waited_for_gpus == 0
    # The operator's own accounting (in status) agrees with the world's truth.
    assert arm.accounted_grams == pytest.approx(2 * clean)
    assert arm.events["Replanned"] >= 1
    assert arm.events["JobSucceeded"] == 2


@pytest.mark.parametrize("spread", [0.0, 1.0])
def test_jobs_decided_together_do_not_replan_together(monkeypatch: pytest.MonkeyPatch, spread: float) -> None:
    # 100 jobs submitted in the same second, all deferred to the clean spell at 02:00.
    monkeypatch.setattr(replans, "SPREAD", spread)
    jobs = [SimJob(f"j{i}", T0, timedelta(hours=2), 1, T0 + timedelta(hours=40), ("a",)) for i in range(100)]
    arm = _run(_world(100), jobs)
    assert all(r.start == T0 + timedelta(hours=2) for r in arm.records)
    assert 100 * 11 <= arm.replans <= 100 * 12  # once an interval either way
    # On one grid all 100 re-plan in the same minute; on their own, about 10 a minute.
    assert arm.busiest_replan_minute == 100 if spread == 0 else arm.busiest_replan_minute < 30


@pytest.mark.parametrize("error", [0.0, 0.1, 0.3])
def test_capacity_is_never_exceeded(error: float) -> None:
    world = _world(4)
    arm = _run(world, [LOOSE, TIGHT], error=error)
    a, b = arm.records
    assert a.start + a.duration <= b.start or b.start + b.duration <= a.start  # 4 + 4 GPUs never overlap
    assert arm.waited_for_gpus == 0  # the plans never put pods where the GPUs were taken


@pytest.mark.parametrize("minutes", [10, 30])
def test_a_deferred_job_is_replanned_on_the_cadence(minutes: int) -> None:
    # Deferred from 00:00 to the clean spell at 02:00, re-planned once an interval until then (on
    # the job's own grid, so the last one may fall on 02:00 itself or just before).
    arm = _run(_world(4), [LOOSE], _settings(timedelta(minutes=minutes)))
    assert arm.records[0].start == T0 + timedelta(hours=2)
    assert 120 // minutes - 1 <= arm.replans <= 120 // minutes
    assert arm.planner_calls == 1 + arm.replans
    assert arm.moves == 0


def test_a_job_released_at_its_latest_start_waits_for_the_gpus() -> None:
    # "busy" must start at once and holds every GPU for 10 h; "late" cannot fit before its latest
    # start: the operator releases it there anyway, and its pods wait (unschedulable) until busy ends.
    busy = SimJob("busy", T0, timedelta(hours=10), 4, T0 + timedelta(hours=10), ("a",))
    late = SimJob("late", T0 + timedelta(hours=1), timedelta(hours=2), 2, T0 + timedelta(hours=3), ("a",))
    arm = _run(_world(4), [busy, late])
    b, lt = arm.records
    assert b.start == T0
    assert lt.start == b.start + b.duration
    assert not lt.deadline_met
    assert arm.waited_for_gpus == 1
    assert arm.flagged == 1
    assert arm.events["Unschedulable"] == 1


def _long_world(capacity: int, days: int) -> World:
    values = ([300.0] * 2 + [50.0] * 4 + [300.0] * 10 + [150.0] * 8) * (days + 4)
    traces = {"a": series_from_values("a", "test", T0, timedelta(hours=1), values)}
    return build_world(
        traces,
        {"a": capacity},
        start=T0,
        end=T0 + timedelta(days=days + 3),
        slot=SLOT,
        gpu_model="",
        align=False,
        required_end=T0 + timedelta(days=days + 2),
    )


def test_skipping_quiet_polls_changes_nothing() -> None:
    # A workload under pressure (jobs wait for GPUs) with forecast error: every decision and outcome
    # is the same whether or not the running jobs' no-op polls are skipped.
    jobs = [replace(j, gpus=min(j.gpus, 8)) for j in generate_jobs(["a"], T0, 0.5, 20, seed=3)]
    world = _long_world(8, 3)
    fast, slow = (
        operator.OperatorSimulation(world, jobs, _settings(), ForecastModel(world, 0.1, 3), skip_quiet_polls=skip).run()
        for skip in (True, False)
    )
    assert fast.waited_for_gpus > 0
    assert fast.moved_aside > 0
    assert fast.decisions < slow.decisions
    assert fast.records == slow.records
    assert replace(fast, decisions=0) == replace(slow, decisions=0)


def test_a_burst_is_planned_at_once_and_keeps_capacity() -> None:
    # Twelve jobs created in the same instant: more than BURST_JOBS first decisions queued.
    jobs = [SimJob(f"j{i}", T0, timedelta(hours=1), 2, T0 + timedelta(hours=12), ("a",)) for i in range(12)]
    world = _world(8)
    arm = _run(world, jobs)
    assert arm.burst_plans >= 1
    assert arm.waited_for_gpus == 0
    _never_overlap(arm.records, [j.gpus for j in jobs], 8)
    assert all(r.deadline_met for r in arm.records)


def test_the_baseline_runs_at_once_and_queues() -> None:
    base = run_baseline(_world(4), [LOOSE, TIGHT], _settings())
    assert [r.start for r in base] == [T0, T0 + timedelta(hours=2)]  # loose at once, tight right after it
    assert all(r.deadline_met for r in base)
