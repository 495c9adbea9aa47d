"""MultiKueue's objects as the external dispatcher reads and writes them. Pure.

- `nomination_apply`: the status apply that nominates a worker, written as Kueue's own
  `workload.PatchAdmissionStatus` writes it (`PrepareWorkloadPatch`, strict): the whole admission
  status as read, with `resourceVersion`, under the field manager `kueue-admission`. An apply that
  carries only `nominatedClusterNames` under that manager drops the admission and QuotaReserved
  (the fields it no longer lists are removed), and a merge patch leaves the field to another owner,
  so Kueue can never set `clusterName` (see docs/design/kueue-admission.md, "MultiKueue").
- `worker_capacity`: a worker's free GPUs as seen from the worker (nodes and pods there).
- `owner_template_patch`: the merge patch that adds our annotations to the manager Job's (or
  JobSet's) pod templates before nomination: the remote Job is a copy of it made once, at creation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from green_operator.api.spec import gpus_in_template
from green_operator.regions import NodeInfo, RegionConfig, region_capacity

from .workload import GROUP, VERSION

MULTIKUEUE_CONTROLLER = "kueue.x-k8s.io/multikueue"
"""The AdmissionCheck `controllerName` of MultiKueue: a Workload carrying such a check is ours to dispatch."""
ADMISSION_MANAGER = "kueue-admission"
"""Kueue's field manager for the admission status (`constants.AdmissionName`)."""
ADMISSION_CONDITIONS = (
    "QuotaReserved",
    "BlockedOnPreemptionGates",
    "Evicted",
    "Admitted",
    "Preempted",
    "Requeued",
    "DeactivationTarget",
    "Finished",
)
"""The conditions Kueue's admission apply owns (`admissionManagedConditions`, pkg/workload)."""
_COPIED = ("accumulatedPastExecutionTimeSeconds", "unhealthyNodes", "preemptionGates")


class NotNominableError(ValueError):
    """The Workload cannot be nominated (a worker already reserved it, or it holds no quota)."""


def nomination_apply(body: Mapping[str, Any], clusters: Sequence[str]) -> dict[str, Any]:
    """Kueue's `PrepareWorkloadPatch(wl, strict=true)` with `nominatedClusterNames` set: apply it to
    the status subresource as `kueue-admission`, with force. The resourceVersion makes a stale read
    fail (409) instead of overwriting what Kueue wrote since."""
    meta = body.get("metadata") or {}
    st = body.get("status") or {}
    if st.get("clusterName"):
        raise NotNominableError(f"the workload is already reserved by worker {st['clusterName']!r}")
    if not st.get("admission"):
        raise NotNominableError("the workload has no quota reservation: MultiKueue would not create remote workloads")
    out: dict[str, Any] = {"admission": copy.deepcopy(st["admission"]), "resourceRequests": []}
    rq = st.get("requeueState") or {}
    if rq.get("count") is not None or rq.get("requeueAt") is not None:
        out["requeueState"] = copy.deepcopy(rq)
    out["conditions"] = [copy.deepcopy(c) for c in st.get("conditions") or [] if c.get("type") in ADMISSION_CONDITIONS]
    for key in _COPIED:
        if st.get(key) is not None:
            out[key] = copy.deepcopy(st[key])
    evictions = (st.get("schedulingStats") or {}).get("evictions")
    if evictions:
        out["schedulingStats"] = {"evictions": copy.deepcopy(evictions)}
    out["nominatedClusterNames"] = list(clusters)
    out["admissionChecks"] = copy.deepcopy(list(st.get("admissionChecks") or []))
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workload",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "status": out,
    }


@dataclass(frozen=True)
class WorkerCapacity:
    gpus: int
    """Allocatable GPUs on the worker's schedulable nodes."""
    used: int
    """GPUs requested by its pods that are not finished (pending ones too: they will take them)."""
    gpu_model: str

    @property
    def free(self) -> int:
        return max(self.gpus - self.used, 0)


def worker_capacity(
    region: RegionConfig, nodes: Iterable[NodeInfo], pods: Iterable[Mapping[str, Any]]
) -> WorkerCapacity:
    """A worker cluster holds one region: every schedulable node counts, whatever its labels."""
    cap = region_capacity(RegionConfig(region.name, {}, (), region.gpu_model), nodes)
    used = 0
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            continue
        used += gpus_in_template({"spec": pod.get("spec") or {}})
    return WorkerCapacity(cap.gpus, used, cap.gpu_model)


JOB_KINDS = ("Job", "JobSet")


def owner_template_patch(
    kind: str, owner: Mapping[str, Any], updates: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """A merge patch setting each pod set update's annotations on the owner's pod template(s), or None
    when they are all there. The updates hold only keys the user's template (the Workload's copy, made
    at submission) lacks, so a different value on the owner is ours, from an earlier nomination of a
    worker since lost, and is replaced. A batch/v1 Job has one pod set (`main`); a JobSet has one per
    replicated job, and a merge patch replaces lists, so its whole `replicatedJobs` is sent back."""
    by_set = {str(u.get("name")): dict(u.get("annotations") or {}) for u in updates}
    spec = owner.get("spec") or {}
    if kind == "Job":
        ann = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
        add = {k: v for k, v in by_set.get("main", {}).items() if ann.get(k) != v}
        return {"spec": {"template": {"metadata": {"annotations": add}}}} if add else None
    if kind == "JobSet":
        jobs = copy.deepcopy(list(spec.get("replicatedJobs") or []))
        changed = False
        for rj in jobs:
            template = rj.setdefault("template", {}).setdefault("spec", {}).setdefault("template", {})
            ann = template.setdefault("metadata", {}).setdefault("annotations", {})
            for k, v in by_set.get(str(rj.get("name")), {}).items():
                if ann.get(k) != v:
                    ann[k] = v
                    changed = True
        return {"spec": {"replicatedJobs": jobs}} if changed else None
    return None


def owner_path(namespace: str, kind: str, name: str) -> str | None:
    ns, n = quote(namespace, safe=""), quote(name, safe="")
    if kind == "Job":
        return f"/apis/batch/v1/namespaces/{ns}/jobs/{n}"
    if kind == "JobSet":
        return f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets/{n}"
    return None
