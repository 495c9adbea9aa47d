"""The segment planner for interruptible jobs: examples, and properties for any input (the work is
done before the deadline, capacity is never exceeded, no segment is shorter than the minimum, every
resume pays its overhead, and re-planning along the way never breaks the promise)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from green_operator.planner import PlannerSettings, RegionForecast, Reservation
from green_operator.planner.segments import SegmentJob, SegmentPlan, plan_segments, slots_for

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
SLOT = timedelta(minutes=30)
S = PlannerSettings(slot=SLOT, horizon=timedelta(hours=48))


def job(**kw: object) -> SegmentJob:
    base = SegmentJob(
        key="ns/j",
        gpus=1,
        remaining=timedelta(hours=3),
        deadline=T0 + timedelta(hours=12),
        min_segment=timedelta(hours=1),
        resume_overhead=timedelta(minutes=30),
        regions=("a",),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def region(values: list[float], name: str = "a", capacity: int = 4) -> RegionForecast:
    return RegionForecast(name, capacity, "unknown", T0, values)


def work_done(p: SegmentPlan, overhead: timedelta) -> int:
    o = slots_for(overhead, SLOT)
    return sum(slots_for(s.length, SLOT) - (o if s.resume else 0) for s in p.segments)


def test_two_clean_windows_make_two_segments_and_the_resume_pays_its_overhead() -> None:
    # Half-hour slots from 10:00: a window 11:00-13:00 and a cleaner one 15:00-17:00.
    slots = [900.0] * 2 + [100.0, 100.0, 100.0, 150.0] + [900.0] * 4 + [50.0] * 4 + [900.0] * 20
    p = plan_segments(job(), [region(slots)], [], T0, S)
    assert not p.deadline_at_risk
    # 3h of work is 6 slots: 3 in the first window, then a resume (one slot of overhead) and 3 more.
    assert [(s.start.hour, s.start.minute, s.end.hour, s.end.minute, s.resume) for s in p.segments] == [
        (11, 0, 12, 30, False),
        (15, 0, 17, 0, True),
    ]
    assert work_done(p, timedelta(minutes=30)) == 6
    assert p.expected_grams == pytest.approx((300 + 200) * 0.3 * 0.5 / 1000 * 1000, rel=1e-6)
    assert p.expected_grams < p.baseline_grams


def test_a_short_job_runs_in_one_piece_even_below_the_minimum() -> None:
    p = plan_segments(job(remaining=timedelta(minutes=30)), [region([300.0] * 4 + [10.0] + [300.0] * 30)], [], T0, S)
    assert [(s.start, s.end) for s in p.segments] == [
        (T0 + 2 * timedelta(hours=1), T0 + timedelta(hours=2, minutes=30))
    ]


def test_a_running_job_continues_without_overhead_and_counts_its_run_toward_the_minimum() -> None:
    since = T0 - timedelta(minutes=30)
    p = plan_segments(job(fresh=False, running_since=since), [region([500.0] * 2 + [10.0] * 30)], [], T0, S)
    assert p.segments[0].start == since
    assert not p.segments[0].resume
    assert p.segments[0].end == T0 + SLOT  # ran 30 min, must run 30 more before it may pause


def test_an_impossible_deadline_runs_at_once_in_one_piece_and_says_so() -> None:
    p = plan_segments(job(deadline=T0 + timedelta(hours=1)), [region([100.0] * 40)], [], T0, S)
    assert p.deadline_at_risk
    assert len(p.segments) == 1
    assert p.start == T0
    assert "no longer fits" in p.reason


def test_full_slots_are_skipped() -> None:
    busy = [Reservation("a", T0, T0 + timedelta(hours=4), 4)]
    p = plan_segments(job(remaining=timedelta(hours=1)), [region([10.0] * 8 + [300.0] * 30)], busy, T0, S)
    assert p.start >= T0 + timedelta(hours=4)


def test_the_cleaner_region_wins() -> None:
    p = plan_segments(job(regions=("a", "b")), [region([300.0] * 40), region([100.0] * 40, "b")], [], T0, S)
    assert p.region == "b"
    assert p.baseline_intensity == pytest.approx(300.0)


# -- properties ----------------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> tuple[SegmentJob, RegionForecast]:
    length = draw(st.integers(8, 60))
    values = draw(st.lists(st.floats(10, 900), min_size=length, max_size=length))
    remaining = timedelta(minutes=draw(st.integers(10, 8 * 60)))
    overhead = timedelta(minutes=draw(st.sampled_from([0, 10, 30, 45])))
    min_segment = overhead + timedelta(minutes=draw(st.integers(1, 150)))
    slack = timedelta(minutes=draw(st.integers(0, 16 * 60)))
    j = job(
        remaining=remaining,
        resume_overhead=overhead,
        min_segment=min_segment,
        deadline=T0 + remaining + overhead + slack,
        fresh=draw(st.booleans()),
        gpus=draw(st.integers(1, 3)),
    )
    return j, region(values, capacity=draw(st.integers(1, 4)))


def check_plan(p: SegmentPlan, j: SegmentJob, now: datetime) -> None:
    o = slots_for(j.resume_overhead, SLOT)
    if not p.deadline_at_risk:
        assert p.end <= j.deadline
        assert work_done(p, j.resume_overhead) >= slots_for(j.remaining, SLOT)
    for i, s in enumerate(p.segments):
        assert s.start >= (j.running_since or now)
        assert s.end > s.start
        if i > 0:
            assert p.segments[i - 1].end < s.start, "segments are separate"
            assert s.resume, "every segment after a pause resumes"
        first_resumes = not j.fresh and j.running_since is None
        if i == 0:
            assert s.resume == first_resumes
        if s.resume:
            assert slots_for(s.length, SLOT) > o, "a resume pays its overhead and still does work"
    if len(p.segments) > 1:
        assert all(s.length >= j.min_segment for s in p.segments), "no segment shorter than the minimum"


@settings(max_examples=150, deadline=None)
@given(cases())
def test_plans_meet_the_deadline_the_minimum_and_the_overheads(case: tuple[SegmentJob, RegionForecast]) -> None:
    j, rf = case
    assume(j.gpus <= rf.capacity_gpus)
    p = plan_segments(j, [rf], [], T0, S)
    check_plan(p, j, T0)
    if slots_for(j.remaining, SLOT) + (0 if j.fresh else slots_for(j.resume_overhead, SLOT)) <= (
        math.floor((j.deadline - T0) / SLOT)
    ):
        assert not p.deadline_at_risk, "a job that fits in one piece is never at risk"


@settings(max_examples=80, deadline=None)
@given(st.lists(cases(), min_size=2, max_size=5), st.integers(1, 4))
def test_capacity_is_never_exceeded(many: list[tuple[SegmentJob, RegionForecast]], capacity: int) -> None:
    rf = replace(many[0][1], capacity_gpus=capacity)
    held: list[Reservation] = []
    for i, (j, _) in enumerate(many):
        j = replace(j, key=f"ns/{i}", gpus=min(j.gpus, capacity))
        p = plan_segments(j, [rf], held, T0, S)
        check_plan(p, j, T0)
        held += p.reservations(j.gpus)
    edges = sorted({t for r in held for t in (r.start, r.end)})
    for t in edges:
        assert sum(r.gpus for r in held if r.start <= t < r.end) <= capacity, t


@settings(max_examples=100, deadline=None)
@given(cases(), st.integers(1, 30), st.lists(st.floats(10, 900), min_size=60, max_size=60))
def test_replanning_along_the_plan_never_breaks_the_promise(
    case: tuple[SegmentJob, RegionForecast], steps: int, new_values: list[float]
) -> None:
    j, rf = case
    assume(j.gpus <= rf.capacity_gpus)
    p = plan_segments(j, [rf], [], T0, S)
    assume(not p.deadline_at_risk)
    o = slots_for(j.resume_overhead, SLOT)
    now = T0 + SLOT * steps
    done = 0
    running_since = None
    for s in p.segments:
        ran = slots_for(min(s.end, now) - s.start, SLOT) if s.start < now else 0
        done += max(ran - (o if s.resume else 0), 0)
        if s.start < now < s.end:
            running_since = s.start
    total = slots_for(j.remaining, SLOT)
    assume(done < total and now < j.deadline)
    later = replace(
        j,
        remaining=j.remaining - SLOT * done if done else j.remaining,
        fresh=j.fresh and now <= p.start,
        running_since=running_since,
    )
    # Forecasts change; the job keeps its region's capacity and resumes where it paused.
    q = plan_segments(later, [replace(rf, intensity=new_values)], [], now, S)
    assert not q.deadline_at_risk
    check_plan(q, later, now)
