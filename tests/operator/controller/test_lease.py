"""Leader election's decisions: who may take a Lease, when, and what gets written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from green_operator.controller.lease import (
    LeaseRecord,
    LeaseTimings,
    Observation,
    Verdict,
    lease_spec,
    observe,
    released_spec,
    verdict,
)

NOW = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)


def record(holder: str = "b", duration: int = 15, renew: str = "r1", transitions: int = 2) -> LeaseRecord:
    return LeaseRecord(holder, duration, "a0", renew, transitions)


def test_no_lease_is_created() -> None:
    assert verdict("a", exists=False, seen=None, now=0.0) is Verdict.CREATE


def test_our_own_lease_is_renewed() -> None:
    assert verdict("a", True, Observation(record(holder="a"), since=0.0), now=100.0) is Verdict.RENEW


def test_another_holder_is_waited_out_for_the_lease_duration_on_our_own_clock() -> None:
    seen = Observation(record(duration=15), since=100.0)
    assert verdict("a", True, seen, now=114.9) is Verdict.WAIT
    assert verdict("a", True, seen, now=115.0) is Verdict.TAKE


def test_a_renewal_we_observe_restarts_the_wait() -> None:
    first = observe(None, record(renew="r1"), 100.0)
    assert observe(first, record(renew="r1"), 110.0) is first  # unchanged: the first sighting counts
    renewed = observe(first, record(renew="r2"), 110.0)
    assert renewed.since == 110.0
    assert verdict("a", True, renewed, now=120.0) is Verdict.WAIT


def test_a_released_lease_is_free_at_once() -> None:
    assert verdict("a", True, Observation(record(holder=""), since=100.0), now=100.0) is Verdict.TAKE


def test_garbage_in_a_lease_never_makes_it_last_forever() -> None:
    rec = LeaseRecord.of({"spec": {"holderIdentity": "b", "leaseDurationSeconds": "forever", "leaseTransitions": -3}})
    assert rec.duration_s == 0
    assert rec.transitions == 0
    assert verdict("a", True, Observation(rec, since=0.0), now=1.0) is Verdict.TAKE


def test_taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() -> None:
    timings = LeaseTimings()
    taken = lease_spec("a", timings, NOW, record(transitions=2), Verdict.TAKE)
    assert taken["holderIdentity"] == "a"
    assert taken["leaseTransitions"] == 3
    assert taken["acquireTime"] == taken["renewTime"] == "2026-12-03T12:00:00.123456Z"
    renewed = lease_spec("a", timings, NOW, LeaseRecord("a", 15, "a0", "r1", 3), Verdict.RENEW)
    assert renewed["acquireTime"] == "a0"
    assert renewed["leaseTransitions"] == 3
    assert lease_spec("a", timings, NOW, None, Verdict.CREATE)["leaseTransitions"] == 0
    assert lease_spec("a", timings, NOW, record(holder=""), Verdict.TAKE)["leaseTransitions"] == 3


def test_release_empties_the_holder() -> None:
    spec = released_spec(record(holder="a"), NOW)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 0), (15, 3, 5)])
def test_timings_that_could_give_two_leaders_are_refused(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseTimings(duration, deadline, retry)
