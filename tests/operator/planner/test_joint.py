"""The joint re-plan: all deferred jobs re-planned together, moves capped, deadlines kept."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

import green_operator.planner.joint as joint
from green_operator.planner import (
    Decision,
    JobRequest,
    PlannerSettings,
    PowerPolicy,
    PowerRequest,
    RegionForecast,
    Reservation,
    plan,
)
from green_operator.planner.joint import OUTCOMES, joint_replan
from green_operator.planner.scheduler import BudgetSpentError, Planner

T0 = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
SETTINGS = PlannerSettings(reserve_fraction=0.0)
# Dirty (300), a clean window (50) 02:00-06:00 and a nearly as clean one (60) 26:00-30:00.
INTENSITY = [300.0] * 8 + [50.0] * 16 + [300.0] * 80 + [60.0] * 16 + [300.0] * 72
REGION = RegionForecast("a", 4, "", T0, INTENSITY)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def request(key: str, deadline: float) -> JobRequest:
    return JobRequest(key, 4, timedelta(hours=4), T0, at(deadline), ("a",), PowerRequest(PowerPolicy.NONE))


def sequential() -> list[JobRequest]:
    """The flexible job is planned first and takes the clean window; the urgent one, planned next
    around it, is left the dirty hours: what first decisions one at a time do."""
    flexible, urgent = request("flexible", 40), request("urgent", 11)
    first = plan([flexible], [REGION], [], T0, SETTINGS)[0]
    held = Reservation("a", first.start, first.end, 4)
    second = plan([urgent], [REGION], [held], T0, SETTINGS)[0]
    assert first.start == at(2)
    assert second.start != at(2)
    return [dataclasses.replace(flexible, previous=first), dataclasses.replace(urgent, previous=second)]


def check(jobs: list[JobRequest], moved: list[Decision]) -> None:
    """Deadlines hold, latest starts are kept and the region never holds more than its GPUs."""
    plans = {j.key: j.previous for j in jobs} | {d.key: d for d in moved}
    for j in jobs:
        d = plans[j.key]
        assert d is not None
        assert d.start <= j.latest_start
        assert d.end <= j.deadline
    windows = sorted((d.start, d.end) for d in plans.values() if d is not None)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start >= end  # 4 GPUs each in a 4-GPU region: runs may not overlap


def test_moves_the_flexible_job_to_make_room_for_the_urgent_one() -> None:
    jobs = sequential()
    result = joint_replan(jobs, [REGION], [], T0, SETTINGS)
    by_key = {d.key: d for d in result.moved}
    assert by_key["urgent"].start == at(2)
    assert by_key["flexible"].start == at(26)
    assert result.grams_after < result.grams_before * 0.5
    assert result.outcome in ("optimal", "improved")
    check(jobs, result.moved)


def test_moves_are_capped_and_a_partial_move_must_fit_alone() -> None:
    jobs = sequential()
    result = joint_replan(jobs, [REGION], [], T0, SETTINGS, max_moves=1)
    # One move alone cannot help: the urgent job needs the flexible one gone first.
    assert len(result.moved) <= 1
    assert result.grams_after <= result.grams_before + 1e-6
    check(jobs, result.moved)


def test_no_move_below_the_minimum_gain() -> None:
    jobs = sequential()
    result = joint_replan(jobs, [REGION], [], T0, SETTINGS, min_gain=0.9)
    assert result.moved == []
    assert result.grams_after == pytest.approx(result.grams_before)


def test_the_heuristic_stands_in_when_the_solver_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("solver unavailable")

    monkeypatch.setattr(joint, "_optimise", broken)
    jobs = sequential()
    result = joint_replan(jobs, [REGION], [], T0, SETTINGS)
    assert result.outcome == "fallback"
    assert result.outcome in OUTCOMES
    assert result.grams_after <= result.grams_before + 1e-6
    check(jobs, result.moved)


def test_fixed_bookings_are_respected() -> None:
    jobs = sequential()
    # Something that is not re-planned already holds the clean window: nothing may move into it.
    result = joint_replan(jobs, [REGION], [Reservation("a", at(2), at(6), 4)], T0, SETTINGS)
    assert all(not (d.start < at(6) and d.end > at(2)) for d in result.moved)


def test_nothing_to_replan() -> None:
    result = joint_replan([], [REGION], [], T0, SETTINGS)
    assert (result.moved, result.grams_before) == ([], 0.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"budget_s": 0.0}, "budget_s"), ({"max_moves": -1}, "max_moves"), ({"min_gain": 1.0}, "min_gain")],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        joint_replan(sequential(), [REGION], [], T0, SETTINGS, **kwargs)  # type: ignore[arg-type]


def test_the_solver_prints_nothing() -> None:
    """HiGHS's Python wrapper prints a banner to stdout as it is built; the operator's stdout is
    its log, so the joint re-plan builds a silent instance. A fresh process: the banner comes once."""
    test = "test_moves_the_flexible_job_to_make_room_for_the_urgent_one"
    code = f"import runpy; runpy.run_path({__file__!r})[{test!r}]()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_a_spent_budget_leaves_the_plans_as_they_are() -> None:
    jobs = sequential()
    result = joint_replan(jobs, [REGION], [], T0, SETTINGS, budget_s=1e-9)
    assert (result.outcome, result.moved) == ("timeout", [])


def test_the_steps_after_the_solver_stop_at_the_clock() -> None:
    jobs = sequential()
    planner = Planner(jobs, [REGION], [], T0, SETTINGS)
    with pytest.raises(BudgetSpentError):
        planner.greedy(planner.slack_order, None, until=0.0)
    s = planner.greedy(planner.slack_order)
    before = list(s.placements)
    planner.polish(s, [True, True], None, until=0.0)
    assert s.placements == before
