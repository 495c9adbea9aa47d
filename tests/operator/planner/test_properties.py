"""Properties that must hold for any input: capacity, deadlines, never worse than the baseline."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

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
from green_operator.planner.scheduler import Planner

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
S = PlannerSettings()
NAMES = ("a", "b", "c")
POLICIES = (PowerRequest(PowerPolicy.NONE), PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=15))


@st.composite
def scenarios(draw: st.DrawFn, *, roomy: bool = False) -> tuple[list[JobRequest], list[RegionForecast], datetime]:
    n_regions = draw(st.integers(1, 3))
    length = draw(st.integers(8, 96))
    n_jobs = draw(st.integers(1, 8))
    jobs = []
    for i in range(n_jobs):
        earliest = T0 + SLOT * draw(st.integers(0, 40)) + timedelta(minutes=draw(st.sampled_from([0, 0, 7])))
        duration = timedelta(minutes=draw(st.integers(5, 8 * 60)))
        slack = timedelta(minutes=draw(st.integers(-60, 24 * 60)))
        regions = tuple(draw(st.permutations(NAMES[:n_regions]))[: draw(st.integers(1, n_regions))])
        jobs.append(
            JobRequest(
                key=f"j{i}",
                gpus=draw(st.integers(1, 4)),
                duration=duration,
                earliest_start=earliest,
                deadline=earliest + duration + slack,
                regions=regions,
                power=draw(st.sampled_from(POLICIES)),
            )
        )
    total = sum(j.gpus for j in jobs)
    forecasts = [
        RegionForecast(
            NAMES[r],
            total if roomy else draw(st.integers(1, 6)),
            draw(st.sampled_from(["H100", "A100", "unknown"])),
            T0,
            draw(st.lists(st.integers(10, 500).map(float), min_size=length, max_size=length)),
        )
        for r in range(n_regions)
    ]
    now = T0 + timedelta(minutes=draw(st.sampled_from([0, 3, 14])))
    return jobs, forecasts, now


def _occupancy(d: Decision) -> range:
    a = math.floor((d.start - T0) / SLOT + 1e-9)
    b = math.ceil((d.end - T0) / SLOT - 1e-9)
    return range(a, max(b, a + 1))


def _meets(d: Decision, job: JobRequest) -> bool:
    return d.end <= job.deadline + timedelta(seconds=1)


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.integers(0, 4))
def test_capacity_is_never_exceeded(case: tuple[list[JobRequest], list[RegionForecast], datetime], busy: int) -> None:
    jobs, regions, now = case
    cap = {r.region: r.capacity_gpus for r in regions}
    reservation = Reservation(regions[0].region, T0, T0 + timedelta(hours=3), min(busy, cap[regions[0].region]))
    decisions = plan(jobs, regions, [reservation], now, S)
    used: dict[tuple[str, int], int] = {}
    for k in range(12):
        used[(reservation.region, k)] = reservation.gpus
    for d, j in zip(decisions, jobs, strict=True):
        if j.gpus > max(cap[r] for r in j.regions):
            assert d.deadline_at_risk  # cannot run anywhere: flagged, not counted
            continue
        for k in _occupancy(d):
            used[(d.region, k)] = used.get((d.region, k), 0) + j.gpus
    for (region, _), gpus in used.items():
        assert gpus <= cap[region]


@settings(max_examples=60, deadline=None)
@given(scenarios(roomy=True))
def test_feasible_deadlines_are_met_without_contention(
    case: tuple[list[JobRequest], list[RegionForecast], datetime],
) -> None:
    jobs, regions, now = case
    for d, j in zip(plan(jobs, regions, [], now, S), jobs, strict=True):
        feasible = max(j.earliest_start, now) + j.duration <= j.deadline
        assert d.deadline_at_risk is not feasible
        if feasible:
            assert _meets(d, j)
            assert d.start <= latest_start(j)
        else:
            assert d.start == max(j.earliest_start, now)  # as early as possible


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_never_worse_than_the_baseline_with_exact_forecasts(
    case: tuple[list[JobRequest], list[RegionForecast], datetime],
) -> None:
    jobs, regions, now = case
    decisions = plan(jobs, regions, [], now, S)
    plan_misses = sum(not _meets(d, j) for d, j in zip(decisions, jobs, strict=True))
    base_misses = sum(
        d.baseline_start + j.duration > j.deadline + timedelta(seconds=1) for d, j in zip(decisions, jobs, strict=True)
    )
    assert plan_misses <= base_misses
    if plan_misses == base_misses:
        planned = sum(d.expected_grams for d in decisions)
        baseline = sum(d.baseline_grams for d in decisions)
        assert planned <= baseline * (1 + 1e-9) + 1e-9


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_unflagged_jobs_keep_their_promise(case: tuple[list[JobRequest], list[RegionForecast], datetime]) -> None:
    jobs, regions, now = case
    decisions = plan(jobs, regions, [], now, S)
    assert decisions == plan(jobs, regions, [], now, S)  # deterministic
    for d, j in zip(decisions, jobs, strict=True):
        assert d.start >= max(j.earliest_start, now) - timedelta(seconds=1)
        if not d.deadline_at_risk:
            assert _meets(d, j)
            assert d.start <= latest_start(j)


@settings(max_examples=40, deadline=None)
@given(scenarios(), st.sampled_from([0.0, 0.2]))
def test_a_replan_never_adds_a_late_job(
    case: tuple[list[JobRequest], list[RegionForecast], datetime], fraction: float
) -> None:
    # Re-planning what was just planned, as the operator does every replan interval: the jobs may
    # trade places, but no more of them end up late than before (capacity pressure included).
    jobs, regions, now = case
    s = dataclasses.replace(S, reserve_fraction=fraction)
    first = plan(jobs, regions, [], now, s)
    again = plan([dataclasses.replace(j, previous=d) for j, d in zip(jobs, first, strict=True)], regions, [], now, s)
    late_before = sum(d.deadline_at_risk for d in first)
    late_after = sum(d.deadline_at_risk for d in again)
    assert late_after <= late_before
    for d, j in zip(again, jobs, strict=True):
        if not d.deadline_at_risk:
            assert _meets(d, j)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_one_job_takes_what_polishing_would_give_it(
    case: tuple[list[JobRequest], list[RegionForecast], datetime],
) -> None:
    # The planner returns a single job's greedy placement as it is (`Planner.search`): repairing,
    # polishing and relocating it, with no other job in the batch, must find nothing else.
    jobs, forecasts, now = case
    others = plan(jobs[1:], forecasts, [], now, S) if len(jobs) > 1 else []
    held = [Reservation(d.region, d.start, d.end, j.gpus) for d, j in zip(others, jobs[1:], strict=True)]
    planner = Planner(jobs[:1], forecasts, held, now, S)
    fast = planner.search([True])
    plain = planner.greedy(planner.slack_order)
    full = planner.relocate_gainers(planner.polish(plain, [True], None), [True])
    a, b = fast.placement(0), full.placement(0)
    assert (a.row, a.start_time, a.option) == (b.row, b.start_time, b.option)
