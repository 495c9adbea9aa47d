"""The latest-start promise holds whatever the forecast error: with forecasts wildly wrong (noise of
300 %, or the truth turned upside down, and extrapolated hours past a short horizon), every job
still starts by its latest start. GPUs to spare, so every deadline can be met."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from green_operator.carbon.series import series_from_values
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.operator import run_operator
from green_operator.simulate.world import FloatArray, ForecastModel, World, build_world

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SLOT = timedelta(minutes=30)
DAYS = 3


class Inverted(ForecastModel):
    """Forecasts the truth upside down (clean hours look dirty and dirty ones clean), exact now."""

    def issue(self, k: int, length: int) -> FloatArray:
        truth = self.world.truth[:, k : min(k + length, self.world.length)]
        out = truth.max() + truth.min() - truth
        out[:, :1] = truth[:, :1]
        return out


def _world() -> World:
    rng = np.random.default_rng(7)
    hours = 24 * (DAYS + 6)
    day = 200 + 150 * np.sin(np.arange(hours) * 2 * np.pi / 24)
    values = (day * rng.uniform(0.5, 1.5, hours)).tolist()
    traces = {r: series_from_values(r, "test", T0, timedelta(hours=1), values) for r in ("a", "b")}
    return build_world(
        traces,
        {"a": 400, "b": 400},
        start=T0,
        end=T0 + timedelta(days=DAYS + 5),
        slot=SLOT,
        gpu_model="",
        align=False,
        required_end=T0 + timedelta(days=DAYS + 4),
    )


def _jobs() -> list[SimJob]:
    rng = np.random.default_rng(11)
    jobs = []
    for i in range(30):
        submit = T0 + timedelta(minutes=int(rng.integers(0, DAYS * 24 * 60)))
        duration = timedelta(hours=int(rng.integers(1, 30)))
        slack = timedelta(minutes=int(rng.integers(0, 3 * 24 * 60)))
        regions = ("a", "b") if i % 3 else ("a",)
        jobs.append(SimJob(f"j{i}", submit, duration, int(rng.integers(1, 9)), submit + duration + slack, regions))
    return jobs


@pytest.mark.parametrize("wrong", ["noise-300%", "inverted"])
def test_every_job_starts_by_its_latest_start_with_wildly_wrong_forecasts(wrong: str) -> None:
    world, jobs = _world(), _jobs()
    planner = PlannerSettings(slot=SLOT, horizon=timedelta(hours=12), extrapolation=timedelta(hours=60))
    settings = SimSettings(planner=planner, power=PowerRequest(PowerPolicy.NONE), replan_interval=timedelta(hours=1))
    model = ForecastModel(world, 3.0, seed=5) if wrong == "noise-300%" else Inverted(world, 0.0, seed=0)
    arm = run_operator(world, jobs, settings, model)
    by_id = {j.id: j for j in jobs}
    assert len(arm.records) == len(jobs)
    late = [r.job_id for r in arm.records if r.start > by_id[r.job_id].deadline - by_id[r.job_id].duration]
    assert late == []
    assert all(r.deadline_met for r in arm.records)
    assert arm.replans > 0  # the wrong forecasts were acted on, not ignored
