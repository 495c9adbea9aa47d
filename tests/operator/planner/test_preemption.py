"""Moving deferred jobs aside for a new job with a tight deadline, and the reserve kept for it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from green_operator.planner import (
    Decision,
    JobRequest,
    PlannerSettings,
    PowerPolicy,
    PowerRequest,
    RegionForecast,
    RepairMemo,
    Reservation,
    plan,
    plan_with_preemption,
)

T0 = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
NO_POWER = PowerRequest(PowerPolicy.NONE)
NO_RESERVE = PlannerSettings(reserve_fraction=0.0)
# Dirty (300) except a clean window (50) from 02:00 to 06:00.
DIP = [300.0] * 8 + [50.0] * 16 + [300.0] * 168


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def job(
    key: str, *, gpus: int, hours: float, earliest: float, deadline: float, regions: tuple[str, ...] = ("a",)
) -> JobRequest:
    return JobRequest(key, gpus, timedelta(hours=hours), at(earliest), at(deadline), regions, NO_POWER)


def region(name: str, values: Sequence[float], capacity: int) -> RegionForecast:
    return RegionForecast(name, capacity, "unknown", T0, list(values))


def with_previous(j: JobRequest, d: Decision) -> JobRequest:
    return dataclasses.replace(j, previous=d)


def _overlap(a: Decision, b: Decision) -> bool:
    return a.start < b.end and b.start < a.end


def test_a_loose_job_moves_aside_for_a_tight_one() -> None:
    # The pressure failure in miniature: the loose job, planned first, books the clean window;
    # the tight job arriving later has nowhere to go before its latest start (03:00) unless the
    # loose one moves, and the loose one can move: the window is long enough for both in turn.
    regions = [region("a", DIP, capacity=4)]
    loose = job("loose", gpus=4, hours=2, earliest=0, deadline=40)
    (planned,) = plan([loose], regions, [], T0, NO_RESERVE)
    assert planned.start == at(2)

    tight = job("tight", gpus=4, hours=2, earliest=1, deadline=5)
    held = Reservation("a", planned.start, planned.end, 4)
    (alone,) = plan([tight], regions, [held], at(1), NO_RESERVE)
    assert alone.deadline_at_risk  # what the operator did before: the tight job misses

    result = plan_with_preemption([tight], [with_previous(loose, planned)], regions, [], at(1), NO_RESERVE)
    (d,) = result.decisions
    assert not d.deadline_at_risk
    assert d.end <= tight.deadline
    (moved,) = result.moved
    assert moved.key == "loose"
    assert not moved.deadline_at_risk
    assert moved.end <= loose.deadline
    assert not _overlap(d, moved)  # 4 + 4 GPUs never share a slot of a 4-GPU region
    assert moved.forecast_intensity == pytest.approx(50)  # still in the clean window
    assert "Deferred" in moved.reason


def test_nothing_moves_when_the_new_job_fits() -> None:
    regions = [region("a", DIP, capacity=8)]
    loose = job("loose", gpus=4, hours=2, earliest=0, deadline=40)
    (planned,) = plan([loose], regions, [], T0, NO_RESERVE)
    tight = job("tight", gpus=4, hours=2, earliest=1, deadline=5)
    result = plan_with_preemption([tight], [with_previous(loose, planned)], regions, [], at(1), NO_RESERVE)
    assert result.moved == []
    held = Reservation("a", planned.start, planned.end, 4)
    assert result.decisions == plan([tight], regions, [held], at(1), NO_RESERVE)


def test_a_deferred_job_that_cannot_move_is_not_broken() -> None:
    # The other job may start at 02:00 and must finish by 04:00: saving the tight job would break it.
    regions = [region("a", DIP, capacity=4)]
    pinned = job("pinned", gpus=4, hours=2, earliest=2, deadline=4)
    (planned,) = plan([pinned], regions, [], T0, NO_RESERVE)
    assert planned.start == at(2)
    tight = job("tight", gpus=4, hours=2, earliest=1, deadline=5)
    result = plan_with_preemption([tight], [with_previous(pinned, planned)], regions, [], at(1), NO_RESERVE)
    assert result.moved == []
    (d,) = result.decisions
    assert d.deadline_at_risk
    assert d.start >= planned.end  # it waits for the GPUs instead of taking them


def test_moves_to_another_region_when_time_alone_does_not_help() -> None:
    regions = [region("a", DIP, capacity=4), region("b", [200.0] * 192, capacity=4)]
    flexible = job("flexible", gpus=4, hours=4, earliest=0, deadline=7, regions=("a", "b"))
    (planned,) = plan([flexible], regions, [], T0, NO_RESERVE)
    assert (planned.region, planned.start) == ("a", at(2))
    tight = job("tight", gpus=4, hours=3, earliest=1, deadline=5)
    result = plan_with_preemption([tight], [with_previous(flexible, planned)], regions, [], at(1), NO_RESERVE)
    (d,) = result.decisions
    (moved,) = result.moved
    assert (d.region, not d.deadline_at_risk) == ("a", True)
    assert moved.region == "b"
    assert moved.end <= flexible.deadline


def test_a_much_cleaner_place_is_taken_from_a_job_with_a_good_alternative() -> None:
    # "b" is nearly as clean as "a"'s window for the flexible job; the a-only job gains far more.
    regions = [region("a", DIP, capacity=4), region("b", [60.0] * 192, capacity=4)]
    flexible = job("flexible", gpus=4, hours=4, earliest=0, deadline=30, regions=("a", "b"))
    (planned,) = plan([flexible], regions, [], T0, NO_RESERVE)
    assert planned.region == "a"
    captive = job("captive", gpus=4, hours=4, earliest=0.5, deadline=6.5)
    result = plan_with_preemption([captive], [with_previous(flexible, planned)], regions, [], at(0.5), NO_RESERVE)
    (d,) = result.decisions
    assert (d.region, d.start) == ("a", at(2))
    (moved,) = result.moved
    assert moved.region == "b"
    total = d.expected_grams + moved.expected_grams
    held = Reservation("a", planned.start, planned.end, 4)
    (without,) = plan([captive], regions, [held], at(0.5), NO_RESERVE)
    assert total < without.expected_grams + planned.expected_grams


def test_the_memo_skips_a_search_that_already_failed_for_an_easier_job() -> None:
    regions = [region("a", DIP, capacity=4)]
    pinned = job("pinned", gpus=4, hours=2, earliest=2, deadline=4)
    (planned,) = plan([pinned], regions, [], T0, NO_RESERVE)
    movable = [with_previous(pinned, planned)]
    memo = RepairMemo()
    tight = job("tight", gpus=4, hours=2, earliest=1, deadline=5)
    first = plan_with_preemption([tight], movable, regions, [], at(1), NO_RESERVE, memo)
    assert first.decisions[0].deadline_at_risk
    assert memo.skipped == 0

    # Harder (later arrival, earlier deadline) while the same GPUs are held: no second search,
    # and the same decision the search would have reached.
    tighter = job("tighter", gpus=4, hours=2, earliest=1.5, deadline=4.5)
    skipped = plan_with_preemption([tighter], movable, regions, [], at(1.5), NO_RESERVE, memo)
    assert memo.skipped == 1
    assert skipped == plan_with_preemption([tighter], movable, regions, [], at(1.5), NO_RESERVE)

    # Easier (fewer GPUs) is searched again.
    smaller = job("smaller", gpus=2, hours=2, earliest=1, deadline=3.5)
    plan_with_preemption([smaller], movable, regions, [], at(1), NO_RESERVE, memo)
    assert memo.skipped == 1


def test_the_memo_applies_when_late_jobs_take_turns() -> None:
    # After a burst, the late jobs try one after another, each with the others movable: the
    # second is no easier than the first, and the world only swapped which of them is planned.
    regions = [region("a", DIP, capacity=4)]
    running = [Reservation("a", at(0), at(6), 4)]
    first = job("first", gpus=4, hours=2, earliest=0, deadline=5)
    second = job("second", gpus=4, hours=2, earliest=0, deadline=4.5)
    d1, d2 = plan([first, second], regions, running, T0, NO_RESERVE)
    assert d1.deadline_at_risk
    assert d2.deadline_at_risk
    memo = RepairMemo()
    one = plan_with_preemption(
        [with_previous(first, d1)], [with_previous(second, d2)], regions, running, at(0.5), NO_RESERVE, memo
    )
    assert one.decisions[0].deadline_at_risk
    assert memo.skipped == 0
    two_args = ([with_previous(second, d2)], [with_previous(first, d1)], regions, running, at(0.5), NO_RESERVE)
    two = plan_with_preemption(*two_args, memo)
    assert memo.skipped == 1
    assert two == plan_with_preemption(*two_args)


def test_the_memo_forgets_when_a_held_job_gets_room_to_move() -> None:
    # The same booking, but its owner's deadline was relaxed: it can move now, and the tight job
    # that failed before is saved.
    regions = [region("a", DIP, capacity=4)]
    pinned = job("pinned", gpus=4, hours=2, earliest=2, deadline=4)
    (planned,) = plan([pinned], regions, [], T0, NO_RESERVE)
    memo = RepairMemo()
    tight = job("tight", gpus=4, hours=2, earliest=1, deadline=5)
    plan_with_preemption([tight], [with_previous(pinned, planned)], regions, [], at(1), NO_RESERVE, memo)
    relaxed = dataclasses.replace(pinned, deadline=at(40), previous=planned)
    result = plan_with_preemption([tight], [relaxed], regions, [], at(1), NO_RESERVE, memo)
    assert memo.skipped == 0
    assert not result.decisions[0].deadline_at_risk
    assert [m.key for m in result.moved] == ["pinned"]


def test_the_memo_forgets_when_gpus_are_freed() -> None:
    regions = [region("a", DIP, capacity=4)]
    running = [Reservation("a", at(0), at(6), 2)]
    deferred = job("deferred", gpus=2, hours=2, earliest=2, deadline=6)
    (planned,) = plan([deferred], regions, running, T0, NO_RESERVE)
    assert planned.start == at(2)
    movable = [with_previous(deferred, planned)]
    memo = RepairMemo()
    tight = job("tight", gpus=4, hours=2, earliest=1, deadline=5)
    first = plan_with_preemption([tight], movable, regions, running, at(1), NO_RESERVE, memo)
    assert first.decisions[0].deadline_at_risk  # 2 GPUs stay busy until 06:00 whatever moves
    # The running job ended early. The tight job still has no room as things stand, but moving the
    # deferred job to 04:00 makes room: the memo must not stop that search.
    again = plan_with_preemption([tight], movable, regions, [], at(1), NO_RESERVE, memo)
    assert memo.skipped == 0
    assert not again.decisions[0].deadline_at_risk
    assert [m.key for m in again.moved] == ["deferred"]


def test_movable_jobs_need_their_previous_plan() -> None:
    regions = [region("a", DIP, capacity=4)]
    with pytest.raises(ValueError, match="previous"):
        plan_with_preemption(
            [job("n", gpus=1, hours=1, earliest=0, deadline=9)],
            [job("m", gpus=1, hours=1, earliest=0, deadline=9)],
            regions,
            [],
            T0,
            NO_RESERVE,
        )


def test_no_new_jobs_no_decisions() -> None:
    assert plan_with_preemption([], [], [region("a", DIP, 4)], [], T0, NO_RESERVE).decisions == []


# -- the reserve ------------------------------------------------------------------------------


def test_deferring_stays_out_of_the_reserve() -> None:
    # 20 % of 10 GPUs held back beyond the ramp, and 1 GPU busy all along: a 9-GPU job cannot
    # defer into the clean window and starts now (what a carbon-blind scheduler does); 7 GPUs can.
    regions = [region("a", DIP, capacity=10)]
    s = PlannerSettings(reserve_fraction=0.2)
    busy = [Reservation("a", T0, at(48), 1)]
    (big,) = plan([job("big", gpus=9, hours=2, earliest=0, deadline=40)], regions, busy, T0, s)
    (small,) = plan([job("small", gpus=7, hours=2, earliest=0, deadline=40)], regions, busy, T0, s)
    assert big.start == T0
    assert small.start == at(2)
    (unreserved,) = plan([job("big", gpus=9, hours=2, earliest=0, deadline=40)], regions, busy, T0, NO_RESERVE)
    assert unreserved.start == at(2)


def test_a_job_alone_may_use_the_whole_region() -> None:
    # Nothing else runs in the clean window: holding GPUs back there would gain nothing.
    regions = [region("a", DIP, capacity=10)]
    s = PlannerSettings(reserve_fraction=0.2)
    (alone,) = plan([job("big", gpus=10, hours=2, earliest=0, deadline=40)], regions, [], T0, s)
    assert alone.start == at(2)


def test_a_job_that_needs_the_reserve_to_meet_its_deadline_gets_it() -> None:
    regions = [region("a", [200.0] * 192, capacity=10)]
    s = PlannerSettings(reserve_fraction=0.2)
    busy = Reservation("a", T0, at(5), 10)  # everything busy until 05:00
    (d,) = plan([job("urgent", gpus=10, hours=2, earliest=0, deadline=7.5)], regions, [busy], T0, s)
    assert d.start == at(5)
    assert not d.deadline_at_risk


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_reserve_fraction_is_checked(fraction: float) -> None:
    with pytest.raises(ValueError, match="reserve_fraction"):
        plan(
            [job("j", gpus=1, hours=1, earliest=0, deadline=9)],
            [region("a", DIP, 4)],
            [],
            T0,
            PlannerSettings(reserve_fraction=fraction),
        )


# -- properties -------------------------------------------------------------------------------


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[JobRequest], JobRequest, list[RegionForecast], float]:
    n_regions = draw(st.integers(1, 2))
    names = ("a", "b")[:n_regions]
    regions = [
        region(
            names[r],
            draw(st.lists(st.integers(10, 400).map(float), min_size=96, max_size=96)),
            draw(st.integers(1, 6)),
        )
        for r in range(n_regions)
    ]
    earlier = []
    for i in range(draw(st.integers(1, 6))):
        hours = draw(st.integers(1, 16)) / 4
        earlier.append(
            job(
                f"e{i}",
                gpus=draw(st.integers(1, 4)),
                hours=hours,
                earliest=0,
                deadline=hours + draw(st.integers(0, 64)) / 4,
                regions=tuple(draw(st.permutations(names))[: draw(st.integers(1, n_regions))]),
            )
        )
    now = draw(st.integers(0, 8)) / 4
    hours = draw(st.integers(1, 12)) / 4
    new = job(
        "new",
        gpus=draw(st.integers(1, 4)),
        hours=hours,
        earliest=now,
        deadline=now + hours + draw(st.integers(0, 16)) / 4,
        regions=tuple(draw(st.permutations(names))[: draw(st.integers(1, n_regions))]),
    )
    return earlier, new, regions, now


@settings(max_examples=80, deadline=None)
@given(arrivals(), st.sampled_from([0.0, 0.2]))
def test_preemption_keeps_capacity_and_every_promise(
    case: tuple[list[JobRequest], JobRequest, list[RegionForecast], float], fraction: float
) -> None:
    earlier, new, regions, now_h = case
    s = PlannerSettings(reserve_fraction=fraction)
    first = plan(earlier, regions, [], T0, s)
    now = at(now_h)
    # Jobs planned to start before now have started: they are fixed; the rest may move.
    running = [
        Reservation(d.region, d.start, d.end, j.gpus) for j, d in zip(earlier, first, strict=True) if d.start < now
    ]
    movable = [with_previous(j, d) for j, d in zip(earlier, first, strict=True) if d.start >= now]
    result = plan_with_preemption([new], movable, regions, running, now, s)
    (d,) = result.decisions
    moved = {m.key: m for m in result.moved}
    final = {m.key: moved.get(m.key, m.previous) for m in movable}
    cap = {r.region: r.capacity_gpus for r in regions}
    too_big = new.gpus > max(cap[r] for r in new.regions)
    assert d.deadline_at_risk is (too_big or d.end > new.deadline + timedelta(seconds=1))
    for m in movable:
        after = final[m.key]
        assert after is not None
        if m.key in moved:
            assert after.start >= now - timedelta(seconds=1)
        if m.previous is not None and not m.previous.deadline_at_risk:
            assert after.end <= m.deadline + timedelta(seconds=1)  # an on-time plan stays on time
    used: dict[tuple[str, int], int] = {}
    entries = [(r.region, r.start, r.end, r.gpus) for r in running]
    entries += [(f.region, f.start, f.end, m.gpus) for m in movable if (f := final[m.key]) is not None]
    entries.append((d.region, d.start, d.end, new.gpus))
    for name, start, end, gpus in entries:
        if gpus > cap[name]:
            continue  # flagged as too big, holds nothing
        a = math.floor((start - T0) / SLOT + 1e-9)
        b = math.ceil((end - T0) / SLOT - 1e-9)
        for k in range(a, max(b, a + 1)):
            used[(name, k)] = used.get((name, k), 0) + gpus
    # Plans made before now may overlap "running" ones by the slot of now; count from now on.
    k_now = math.ceil((now - T0) / SLOT - 1e-9)
    for (name, k), gpus in used.items():
        if k >= k_now:
            assert gpus <= cap[name], (name, k)
