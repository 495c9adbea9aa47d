"""Conditions follow Kubernetes semantics: transition time moves only when status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.api import conditions as cond

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_new_condition_gets_all_fields() -> None:
    c = cond.set_condition([], cond.PLANNED, "True", "Planned", "ok", generation=2, now=T0)
    assert c == [
        {
            "type": "Planned",
            "status": "True",
            "reason": "Planned",
            "message": "ok",
            "observedGeneration": 2,
            "lastTransitionTime": "2026-11-25T10:00:00Z",
        }
    ]


def test_transition_time_changes_only_with_status() -> None:
    c = cond.set_condition([], cond.RUNNING, "False", "PodsPending", "waiting", generation=1, now=T0)
    later = T0 + timedelta(minutes=5)
    same = cond.set_condition(c, cond.RUNNING, "False", "PodsPending", "still waiting", generation=1, now=later)
    assert same[0]["lastTransitionTime"] == "2026-11-25T10:00:00Z"
    assert same[0]["message"] == "still waiting"
    flipped = cond.set_condition(same, cond.RUNNING, "True", "PodsRunning", "1 pod", generation=1, now=later)
    assert flipped[0]["lastTransitionTime"] == "2026-11-25T10:05:00Z"


def test_other_conditions_are_kept_in_a_stable_order() -> None:
    c = cond.set_condition([], cond.CARBON_DATA_AVAILABLE, "True", "LiveData", "x", generation=1, now=T0)
    c = cond.set_condition(c, cond.PLANNED, "True", "Planned", "y", generation=1, now=T0)
    c = cond.set_condition(c, cond.DEFERRED, "True", "WaitingForLowCarbonWindow", "z", generation=1, now=T0)
    assert [x["type"] for x in c] == ["Planned", "Deferred", "CarbonDataAvailable"]
    assert cond.is_true(c, cond.DEFERRED)
    assert not cond.is_true(c, cond.RUNNING)


@pytest.mark.parametrize("reason", ["", "lowercase", "Has Space", "Dash-Ed"])
def test_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        cond.set_condition([], cond.PLANNED, "True", reason, "m", generation=1, now=T0)
