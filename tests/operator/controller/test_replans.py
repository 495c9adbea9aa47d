from __future__ import annotations

from datetime import timedelta

import pytest

from green_operator.api.manifests import job_name
from green_operator.api.spec import TrainingJobSpec
from green_operator.controller import replans
from green_operator.controller.replans import next_replan, replan_after, replan_at
from green_operator.times import parse_rfc3339, rfc3339
from tests.operator.controller import builders as b

INTERVAL = timedelta(minutes=10)
DECIDED = "2026-03-02T10:00:07Z"


def test_the_first_replan_after_a_decision_comes_within_the_interval() -> None:
    decided = parse_rfc3339(DECIDED)
    for i in range(500):
        at = replan_at(f"job-{i}", DECIDED, INTERVAL)
        assert decided + timedelta(seconds=1) < at <= decided + INTERVAL + timedelta(seconds=1)
        assert at.microsecond == 0  # whole seconds, as status records them


@pytest.mark.parametrize("late", [0.0, 0.4, 0.999, 1.5, 30.0])
def test_a_job_then_replans_once_an_interval_on_its_grid(late: float) -> None:
    # Made `late` seconds after the grid point (the operator was busy), recorded to the second.
    first = replan_at("job-a", DECIDED, INTERVAL)
    made = rfc3339(first + timedelta(seconds=late))
    assert replan_at("job-a", made, INTERVAL) == first + INTERVAL


def test_jobs_decided_in_the_same_second_replan_spread_over_the_whole_interval() -> None:
    ats = sorted(replan_at(f"job-{i}", DECIDED, INTERVAL) for i in range(1000))
    assert ats[-1] - ats[0] > INTERVAL * 0.95
    # Evenly, 25 of them would fall in any 15 seconds; on one grid, all 1,000 would.
    busiest = max(sum(1 for b in ats if a <= b < a + timedelta(seconds=15)) for a in ats)
    assert busiest < 60


def test_on_one_grid_they_would_replan_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replans, "SPREAD", 0.0)
    assert len({replan_at(f"job-{i}", DECIDED, INTERVAL) for i in range(100)}) == 1


def test_a_short_interval_still_replans_once_an_interval() -> None:
    interval = timedelta(seconds=3)
    at = replan_at("job-a", DECIDED, interval)
    assert at - parse_rfc3339(DECIDED) <= timedelta(seconds=4)
    assert replan_at("job-a", rfc3339(at), interval) == at + interval


def test_the_status_gives_the_same_time_as_the_decision_that_wrote_it() -> None:
    now = parse_rfc3339(DECIDED) + timedelta(microseconds=250_000)  # written at second precision
    o = b.observed(b.body(), now=now)
    assert isinstance(o.spec, TrainingJobSpec)
    status = {"jobName": job_name(o.spec.name), "plan": {"decidedAt": DECIDED}}
    assert next_replan(status, o.settings.replan_interval) == replan_after(o, o.spec)


def test_a_status_without_a_decision_is_due_at_once() -> None:
    now = parse_rfc3339(DECIDED)
    assert next_replan({}, INTERVAL) < now
    assert next_replan({"plan": {}}, INTERVAL) < now
