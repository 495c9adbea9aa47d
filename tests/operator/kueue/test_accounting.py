"""A Kueue workload's accounting and report row, from its annotations and conditions (no cluster)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from green_operator.kueue.accounting import ANN_RESULT, needs_settling, pod_selector, report_item, status_like
from green_operator.kueue.workload import ANN_PLAN, workload_view
from green_operator.reporting import rows_from_items
from green_operator.times import rfc3339
from tests.operator.kueue.test_admission import MANAGED, T0, workload

PLAN = {
    "region": "north",
    "plannedStart": rfc3339(T0 + timedelta(hours=3)),
    "latestStart": rfc3339(T0 + timedelta(hours=6)),
    "powerLimitWatts": 500,
    "expectedSeconds": 3960.0,
    "expectedGrams": 10.0,
    "intensity": 50.0,
    "baselineRegion": "north",
    "baselineStart": rfc3339(T0),
    "baselineGrams": 80.0,
    "baselineIntensity": 400.0,
    "atRisk": False,
    "reason": "Deferred 3h",
}


def finished(reason: str = "Succeeded", result: dict[str, Any] | None = None) -> dict[str, Any]:
    t = rfc3339(T0 + timedelta(hours=4))
    body = workload(
        MANAGED,
        state="Ready",
        plan=PLAN,
        extra_conditions=[
            {"type": "Admitted", "status": "True", "lastTransitionTime": rfc3339(T0 + timedelta(hours=3))},
            {"type": "Finished", "status": "True", "reason": reason, "lastTransitionTime": t},
        ],
    )
    if result is not None:
        body["metadata"]["annotations"][ANN_RESULT] = json.dumps(result)
    return body


def test_a_finished_planned_workload_needs_settling_once() -> None:
    assert needs_settling(workload_view(finished()))
    assert not needs_settling(workload_view(finished(result={"phase": "Succeeded"})))
    assert not needs_settling(workload_view(workload(MANAGED, plan=PLAN)))  # not finished
    unplanned = finished()
    del unplanned["metadata"]["annotations"][ANN_PLAN]
    assert not needs_settling(workload_view(unplanned))


def test_status_like_reads_the_plan_and_the_run_window() -> None:
    st = status_like(workload_view(finished("Failed")))
    assert st["phase"] == "Failed"
    assert st["region"] == "north"
    assert st["startTime"] == rfc3339(T0 + timedelta(hours=3))
    assert st["completionTime"] == rfc3339(T0 + timedelta(hours=4))
    assert st["plan"]["baselineStart"] == rfc3339(T0)
    assert st["plan"]["expectedDuration"] == "3960s"


def test_report_rows_name_the_users_object_and_total_only_results() -> None:
    result = {
        **status_like(workload_view(finished())),
        "energy": {"joules": 3.6e6, "source": "estimate", "estimatedPods": 1},
        "emissions": {"grams": 50.0, "baselineGrams": 400.0, "savedGrams": 350.0, "intensity": 50.0},
    }
    held = workload(MANAGED, plan=PLAN)
    held["metadata"]["uid"] = "u2"
    unplanned = workload({})
    items = [i for i in (report_item(finished(result=result)), report_item(held), report_item(unplanned)) if i]
    assert len(items) == 2  # a workload we never planned is not ours to report
    rows = rows_from_items(items)
    done = next(r for r in rows if r.phase == "Succeeded")
    assert done.name == "job/x"
    assert done.saved_grams == 350.0
    assert done.has_results
    deferred = next(r for r in rows if r is not done)
    assert deferred.phase == "Deferred"
    assert not deferred.has_results


def test_pods_are_found_by_the_owners_kind() -> None:
    assert pod_selector(workload_view(workload(MANAGED))) == "batch.kubernetes.io/job-name=x"
    body = workload(MANAGED)
    body["metadata"]["ownerReferences"][0].update(kind="JobSet", apiVersion="jobset.x-k8s.io/v1alpha2")
    assert pod_selector(workload_view(body)) == "jobset.sigs.k8s.io/jobset-name=x"
    body["metadata"]["ownerReferences"][0]["kind"] = "RayJob"
    assert pod_selector(workload_view(body)) is None
