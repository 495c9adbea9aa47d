"""A Kueue Workload (kueue.x-k8s.io/v1beta2), reduced to what the carbon check decides on. Pure.

Kueue copies the user's pod templates into `spec.podSets[].template`, so the annotations the user
put on the Job's or JobSet's pod templates are read here without RBAC on the owner's kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from green_operator.regions import RegionConfig
from green_operator.times import parse_rfc3339

CONTROLLER_NAME = "greentraining.io/carbon"
"""The AdmissionCheck `spec.controllerName` this operator serves."""
GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
ANN_PLAN = "greentraining.io/plan"
"""Workload annotation that keeps our plan: eviction resets the check's state and message."""
ANN_HELD_UNTIL = "greentraining.io/held-until"
"""Set with `spec.active: false` when we deactivate a Workload to give its quota back; we (and only
we, seeing this annotation) reactivate it then."""


@dataclass(frozen=True)
class PodSetView:
    name: str
    count: int
    template: Mapping[str, Any]

    @property
    def annotations(self) -> Mapping[str, str]:
        return (self.template.get("metadata") or {}).get("annotations") or {}


@dataclass(frozen=True)
class CheckView:
    name: str
    state: str
    message: str = ""
    last_transition: str = ""


@dataclass(frozen=True)
class Owner:
    """The user's object (the Workload's controller owner): Events go there."""

    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class WorkloadView:
    namespace: str
    name: str
    uid: str
    created: datetime
    pod_sets: tuple[PodSetView, ...]
    checks: Mapping[str, CheckView]
    quota_reserved_at: datetime | None
    """When the current quota reservation was made (QuotaReserved's transition); None: none."""
    finished: bool = False
    evicted: bool = False
    flavors: tuple[str, ...] = ()
    """The ResourceFlavors Kueue assigned, over every pod set and resource."""
    plan: Mapping[str, Any] | None = None
    """Our plan annotation as JSON (None: none, or unreadable)."""
    owner: Owner | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    active: bool = True
    held_until: datetime | None = None
    admitted_at: datetime | None = None
    finished_at: datetime | None = None
    finished_reason: str = ""
    cluster_name: str | None = None
    """MultiKueue: the worker that reserved the workload (fixed once set)."""
    nominated: tuple[str, ...] = ()
    """MultiKueue: `status.nominatedClusterNames` (only while `cluster_name` is unset)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def check_names(self, ours: frozenset[str]) -> list[str]:
        return [n for n in self.checks if n in ours]


def _true(conds: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conds if c.get("type") == kind and c.get("status") == "True"), None)


def workload_view(body: Mapping[str, Any]) -> WorkloadView:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    st = body.get("status") or {}
    conds = st.get("conditions") or []
    reserved = _true(conds, "QuotaReserved")
    admitted = _true(conds, "Admitted")
    finished = _true(conds, "Finished")
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    flavors: list[str] = []
    for psa in (st.get("admission") or {}).get("podSetAssignments") or []:
        for f in (psa.get("flavors") or {}).values():
            if f not in flavors:
                flavors.append(str(f))
    annotations = dict(meta.get("annotations") or {})
    plan: Mapping[str, Any] | None = None
    if ANN_PLAN in annotations:
        try:
            loaded = json.loads(annotations[ANN_PLAN])
            plan = loaded if isinstance(loaded, dict) else None
        except ValueError:
            plan = None
    return WorkloadView(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid", "")),
        created=parse_rfc3339(meta["creationTimestamp"]),
        pod_sets=tuple(
            PodSetView(str(p.get("name")), int(p.get("count") or 1), p.get("template") or {})
            for p in spec.get("podSets") or []
        ),
        checks={
            str(c["name"]): CheckView(
                str(c["name"]), str(c.get("state")), str(c.get("message") or ""), str(c.get("lastTransitionTime") or "")
            )
            for c in st.get("admissionChecks") or []
        },
        quota_reserved_at=parse_rfc3339(reserved["lastTransitionTime"]) if reserved else None,
        finished=finished is not None,
        evicted=_true(conds, "Evicted") is not None,
        flavors=tuple(flavors),
        plan=plan,
        owner=Owner(str(owner["apiVersion"]), str(owner["kind"]), str(owner["name"]), str(owner.get("uid", "")))
        if owner
        else None,
        annotations=annotations,
        active=spec.get("active", True) is not False,
        held_until=_time_or_none(annotations.get(ANN_HELD_UNTIL)),
        admitted_at=_time_or_none((admitted or {}).get("lastTransitionTime")),
        finished_at=_time_or_none((finished or {}).get("lastTransitionTime")),
        finished_reason=str((finished or {}).get("reason") or ""),
        cluster_name=str(st["clusterName"]) if st.get("clusterName") else None,
        nominated=tuple(str(n) for n in st.get("nominatedClusterNames") or ()),
    )


def _time_or_none(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        return None


def flavor_region(node_labels: Mapping[str, str], regions: Sequence[RegionConfig]) -> str | None:
    """The configured region whose node selector a ResourceFlavor's node labels satisfy."""
    for r in regions:
        if r.node_selector and all(node_labels.get(k) == v for k, v in r.node_selector.items()):
            return r.name
    return None
