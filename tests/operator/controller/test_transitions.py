"""The child Job's state, and the phases and conditions that follow it once released."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from green_operator.accounting.settle import Accounting, EnergyTotal
from green_operator.api.phase import Phase
from green_operator.controller.observed import PodsSummary, child_state
from green_operator.controller.transitions import finished, following

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
UID = "uid-1"


def job(conditions: list[dict[str, Any]], *, owner: str = UID, **st: Any) -> dict[str, Any]:
    return {
        "metadata": {"ownerReferences": [{"uid": owner, "controller": True}]},
        "spec": {"suspend": False},
        "status": {"conditions": conditions, **st},
    }


ACCOUNTING = Accounting(EnergyTotal(3.6e6, "nvml", 0, None, ""), intensity=100.0, baseline_intensity=200.0)


def test_phases_follow_the_pods_and_running_means_they_run() -> None:
    pending = child_state(job([], active=1, ready=0), UID)
    assert pending.owned
    phase, c = following({}, 1, pending, PodsSummary(), NOW)
    assert phase is Phase.STARTING
    assert c[0]["reason"] == "PodsPending"

    stuck = PodsSummary(unschedulable=1, message="0/4 nodes are available: 4 Insufficient nvidia.com/gpu.")
    phase, c = following({}, 1, pending, stuck, NOW)
    assert phase is Phase.STARTING
    assert (c[0]["status"], c[0]["reason"]) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in c[0]["message"]

    running = child_state(job([], active=2, ready=2, startTime="2026-11-25T10:00:00Z"), UID)
    phase, c = following({"conditions": c}, 1, running, PodsSummary(), NOW)
    assert (phase, c[0]["status"], c[0]["reason"]) == (Phase.RUNNING, "True", "PodsRunning")


def test_finished_jobs_succeed_or_fail_with_the_jobs_reason() -> None:
    done = child_state(
        job([{"type": "Complete", "status": "True"}], succeeded=2, completionTime="2026-11-25T11:00:00Z"), UID
    )
    assert done.finished
    assert done.completion_time == datetime(2026, 11, 25, 11, tzinfo=UTC)
    phase, patch = finished({}, 1, done, ACCOUNTING, NOW)
    assert phase is Phase.SUCCEEDED
    assert patch["completionTime"] == "2026-11-25T11:00:00Z"
    assert {x["type"]: x["status"] for x in patch["conditions"]} == {
        "Running": "False",
        "Succeeded": "True",
        "Failed": "False",
    }
    assert patch["emissions"]["savedGrams"] == 100.0

    failed = child_state(
        job(
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "message": "BackoffLimitExceeded",
                    "lastTransitionTime": "2026-11-25T11:00:00Z",
                }
            ]
        ),
        UID,
    )
    phase, patch = finished({}, 1, failed, ACCOUNTING, NOW)
    assert phase is Phase.FAILED
    assert next(x for x in patch["conditions"] if x["type"] == "Failed")["message"] == "BackoffLimitExceeded"

    phase, patch = finished({}, 1, None, ACCOUNTING, NOW)
    assert phase is Phase.FAILED
    assert next(x for x in patch["conditions"] if x["type"] == "Failed")["reason"] == "JobMissing"


def test_a_child_owned_by_another_object_is_not_ours() -> None:
    assert not child_state(job([], owner="someone-else"), UID).owned
