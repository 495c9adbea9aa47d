"""Energy, emissions and savings of a finished Kueue workload, and its row in `green-operator
report`. Pure: the same settling arithmetic as GreenTrainingJobs (`accounting.settle`), fed from the
Workload's plan annotation and conditions; the result is kept in the `greentraining.io/result`
annotation, so the report reads Workloads as it reads GreenTrainingJobs' status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from green_operator.accounting.settle import Accounting
from green_operator.times import rfc3339

from .workload import ANN_PLAN, WorkloadView, workload_view

ANN_RESULT = "greentraining.io/result"
POD_LABELS = {"Job": "batch.kubernetes.io/job-name", "JobSet": "jobset.sigs.k8s.io/jobset-name"}
"""How the pods of each supported kind are found (the label their controller puts on them)."""


def needs_settling(wl: WorkloadView) -> bool:
    """A workload we planned has finished and has no result yet."""
    return wl.finished and wl.plan is not None and ANN_RESULT not in wl.annotations


def pod_selector(wl: WorkloadView) -> str | None:
    o = wl.owner
    label = POD_LABELS.get(o.kind) if o is not None else None
    return f"{label}={o.name}" if o is not None and label else None


def status_like(wl: WorkloadView) -> dict[str, Any]:
    """The Workload in the shape of a GreenTrainingJob's status (what `accounting_windows`,
    `settle` and the report read)."""
    plan = wl.plan or {}
    phase = (
        ("Succeeded" if wl.finished_reason == "Succeeded" else "Failed")
        if wl.finished
        else ("Running" if wl.admitted_at else ("Deferred" if plan else "Pending"))
    )
    status: dict[str, Any] = {"phase": phase}
    if plan:
        status.update(
            region=plan.get("region"),
            plannedStart=plan.get("plannedStart"),
            latestStart=plan.get("latestStart"),
            plan={
                "intensityForecast": plan.get("intensity"),
                "baselineIntensity": plan.get("baselineIntensity"),
                "baselineRegion": plan.get("baselineRegion"),
                "baselineStart": plan.get("baselineStart"),
                "expectedGrams": plan.get("expectedGrams"),
                "baselineGrams": plan.get("baselineGrams"),
                "expectedDuration": f"{int(float(plan.get('expectedSeconds') or 0))}s",
                "deadlineAtRisk": bool(plan.get("atRisk")),
                "reason": plan.get("reason", ""),
            },
        )
    if wl.admitted_at is not None:
        status["startTime"] = rfc3339(wl.admitted_at)
    if wl.finished_at is not None:
        status["completionTime"] = rfc3339(wl.finished_at)
    return status


def result_annotation(wl: WorkloadView, acc: Accounting) -> str:
    return json.dumps({**status_like(wl), **acc.status_fields()}, separators=(",", ":"))


def report_item(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Workload as `reporting.rows_from_items` reads a GreenTrainingJob (None: not one we planned).
    Named after the user's object, e.g. `job/train` or `jobset/train-set`."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if ANN_PLAN not in annotations:
        return None
    wl = workload_view(body)
    status = status_like(wl)
    if ANN_RESULT in annotations:
        try:
            kept = json.loads(annotations[ANN_RESULT])
            if isinstance(kept, dict):
                status = kept
        except ValueError:
            pass
    name = f"{wl.owner.kind.lower()}/{wl.owner.name}" if wl.owner else f"workload/{wl.name}"
    return {
        "metadata": {
            "namespace": wl.namespace,
            "name": name,
            "uid": wl.uid,
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "status": status,
    }
