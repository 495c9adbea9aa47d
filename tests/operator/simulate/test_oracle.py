"""The oracle against brute force on instances small enough to enumerate."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.series import series_from_values
from green_operator.planner import PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.operator import run_operator
from green_operator.simulate.oracle import solve_oracle
from green_operator.simulate.world import ForecastModel, World, build_world

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SLOT = timedelta(minutes=15)
SETTINGS = SimSettings(power=PowerRequest(policy="None"))  # type: ignore[arg-type]


def _world(capacity: dict[str, int]) -> World:
    # Hourly traces over two days; a cleaner spell in "a" and a steady, middling "b".
    a = [300.0, 280, 100, 90, 95, 300, 320, 310] * 6
    b = [200.0] * 48
    traces = {
        "a": series_from_values("a", "test", T0, timedelta(hours=1), a),
        "b": series_from_values("b", "test", T0, timedelta(hours=1), b),
    }
    return build_world(
        traces,
        capacity,
        start=T0,
        end=T0 + timedelta(hours=40),
        slot=SLOT,
        gpu_model="",
        align=False,
        required_end=T0 + timedelta(hours=20),
    )


JOBS = [
    SimJob("x", T0, timedelta(hours=2), 2, T0 + timedelta(hours=6), ("a", "b")),
    SimJob("y", T0 + timedelta(minutes=20), timedelta(hours=1), 2, T0 + timedelta(hours=5), ("a",)),
    SimJob("z", T0 + timedelta(minutes=30), timedelta(minutes=90), 1, T0 + timedelta(hours=6), ("a", "b")),
]


def _brute_force(world: World, jobs: list[SimJob]) -> float:
    options = []
    for j in jobs:
        pos = world.to_slots(j.submit_time)
        s0 = math.floor(pos + 1e-9)
        x = j.duration / SLOT
        starts = [pos] + [float(s) for s in range(s0 + 1, math.floor(world.to_slots(j.deadline) - x + 1e-9) + 1)]
        options.append(
            [
                (
                    r,
                    st,
                    math.floor(st + 1e-9),
                    math.ceil(st + x - 1e-9),
                    0.3 * j.gpus * world.integral(world.row[r], st, x),
                )
                for r in j.regions
                for st in starts
            ]
        )
    best = math.inf
    for combo in itertools.product(*options):
        use: dict[tuple[str, int], int] = {}
        ok = True
        for j, (r, _, a, b, _) in zip(jobs, combo, strict=True):
            for k in range(a, b):
                use[(r, k)] = use.get((r, k), 0) + j.gpus
                ok = ok and use[(r, k)] <= world.capacity[r]
        if ok:
            best = min(best, sum(c[4] for c in combo))
    return best


@pytest.mark.parametrize("capacity", [{"a": 8, "b": 8}, {"a": 2, "b": 2}, {"a": 3, "b": 1}])
def test_oracle_finds_the_enumerated_optimum(capacity: dict[str, int]) -> None:
    world = _world(capacity)
    seed = run_operator(world, JOBS, SETTINGS, ForecastModel(world, 0.0, 0)).records
    result = solve_oracle(world, JOBS, SETTINGS.power, 300.0, seed, time_limit_s=30)
    optimum = _brute_force(world, JOBS)
    assert result.grams == pytest.approx(optimum, rel=1e-9)
    assert result.lower_bound is not None
    assert result.lower_bound <= optimum * (1 + 1e-9)
    assert result.late == 0
    # The online plan can only be as good, never better.
    assert sum(r.grams for r in seed) >= optimum * (1 - 1e-9)


CLASH = [
    SimJob("p", T0, timedelta(hours=2), 2, T0 + timedelta(hours=2), ("a",)),
    SimJob("q", T0, timedelta(hours=2), 2, T0 + timedelta(hours=2), ("a",)),
    SimJob("r", T0, timedelta(hours=1), 1, T0 + timedelta(hours=8), ("a", "b")),
]
"""Two jobs that must both start at once where only one fits: one of them is late."""


def test_a_bound_that_allows_the_plans_late_jobs_holds_for_the_plan() -> None:
    world = _world({"a": 2, "b": 1})
    seed = run_operator(world, CLASH, SETTINGS, ForecastModel(world, 0.0, 0)).records
    late = [k for k, r in enumerate(seed) if not r.deadline_met]
    assert len(late) == 1
    plain = solve_oracle(world, CLASH, SETTINGS.power, 300.0, seed, time_limit_s=30)
    assert (plain.late, plain.lower_bound) == (1, None)  # a penalised bound says nothing on emissions
    mine = solve_oracle(world, CLASH, SETTINGS.power, 300.0, seed, time_limit_s=30, may_be_late=late, integer=False)
    anyone = solve_oracle(world, CLASH, SETTINGS.power, 300.0, seed, time_limit_s=30, may_be_late=range(3))
    assert mine.lower_bound is not None
    assert anyone.lower_bound is not None
    assert mine.records == seed  # the bound alone: no schedule of its own
    assert mine.lower_bound <= sum(r.grams for r in seed) * (1 + 1e-9)
    # Fewer jobs allowed late: fewer schedules to bound, so the bound can only rise.
    assert anyone.lower_bound <= mine.lower_bound * (1 + 1e-9)
    assert anyone.grams >= anyone.lower_bound * (1 - 1e-9)
