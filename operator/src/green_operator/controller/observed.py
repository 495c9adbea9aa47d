"""Everything one decision may read, gathered by a front-end before `reconcile` runs. Pure data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from green_operator.accounting.live_energy import LiveEnergy
from green_operator.accounting.settle import AccountingWindows, EnergyTotal
from green_operator.api.manifests import ANN_TEMPLATE_HASH
from green_operator.api.spec import SpecProblem, TrainingJobSpec
from green_operator.carbon.provider import ForecastResult
from green_operator.planner import Decision, JobRequest, PlannerSettings, RegionForecast, RepairMemo, Reservation
from green_operator.planner.columns import ReservationColumns
from green_operator.regions import RegionConfig
from green_operator.times import parse_rfc3339


@dataclass(frozen=True)
class Settings:
    """The operator's configuration as decisions need it (no provider or I/O settings)."""

    regions: Mapping[str, RegionConfig]
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    replan_interval: timedelta = timedelta(minutes=10)
    metrics_port: int = 9402
    grant_power_limit_capability: bool = False
    live_energy_interval: timedelta | None = None
    """How often a running job's energy is read from Prometheus; None: no Prometheus configured."""

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(self.regions)


@dataclass(frozen=True)
class JobMeta:
    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> JobMeta:
        meta = body["metadata"]
        return cls(
            namespace=str(meta["namespace"]),
            name=str(meta["name"]),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation", 1)),
            created=parse_rfc3339(meta["creationTimestamp"]),
        )


@dataclass(frozen=True)
class ChildState:
    """The child Job as it is, reduced to what decisions read."""

    owned: bool
    """Its controller owner reference is this GreenTrainingJob (same uid)."""
    suspended: bool = False
    started: bool = False
    """The Job controller ever started it (status.startTime): its template can no longer change."""
    deleting: bool = False
    template_hash: str | None = None
    """The hash of the user's pod template it was built from (None: built by an older operator)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_final: bool = False
    failure_message: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_final


def child_state(job: Mapping[str, Any], owner_uid: str) -> ChildState:
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    st = job.get("status") or {}
    conds = st.get("conditions") or []
    complete = any(c.get("type") == "Complete" and c.get("status") == "True" for c in conds)
    failed = next((c for c in conds if c.get("type") == "Failed" and c.get("status") == "True"), None)
    done_at = st.get("completionTime") or (failed or {}).get("lastTransitionTime")
    owners = meta.get("ownerReferences") or []
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    return ChildState(
        owned=any(o.get("uid") == owner_uid and o.get("controller") for o in owners),
        suspended=bool(spec.get("suspend")),
        started=bool(st.get("startTime")),
        deleting=bool(meta.get("deletionTimestamp")),
        template_hash=(meta.get("annotations") or {}).get(ANN_TEMPLATE_HASH),
        node_selector=dict(pod_spec.get("nodeSelector") or {}),
        active=int(st.get("active") or 0),
        ready=int(st.get("ready") or 0),
        succeeded=int(st.get("succeeded") or 0),
        failed=int(st.get("failed") or 0),
        complete=complete,
        failed_final=failed is not None,
        failure_message=str((failed or {}).get("message") or (failed or {}).get("reason") or ""),
        start_time=parse_rfc3339(st["startTime"]) if st.get("startTime") else None,
        completion_time=parse_rfc3339(done_at) if done_at else None,
    )


_CHILD_META = ("name", "namespace", "resourceVersion", "ownerReferences", "deletionTimestamp")


def slim_child(job: Mapping[str, Any]) -> dict[str, Any]:
    """What `child_state` (and the driver's freshness check) reads of a child Job: the rest of its
    body (the pod template, above all) is not kept, a few kilobytes per job in a burst of thousands."""
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    hash_ = (meta.get("annotations") or {}).get(ANN_TEMPLATE_HASH)
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    return {
        "metadata": {
            k: v
            for k, v in meta.items()
            if k in ("name", "namespace", "resourceVersion", "ownerReferences", "deletionTimestamp")
        }
        | ({"annotations": {ANN_TEMPLATE_HASH: hash_}} if hash_ is not None else {}),
        "spec": {"suspend": spec.get("suspend")}
        | ({"template": {"spec": {"nodeSelector": node_selector}}} if node_selector is not None else {}),
        "status": job.get("status") or {},
    }


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable digest of the user's pod template: a child built from another one is rebuilt."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ServiceState:
    """The job's headless Service (multi-pod jobs), as it is."""

    owned: bool
    """Its controller owner reference is this GreenTrainingJob."""


def service_state(service: Mapping[str, Any], owner_uid: str) -> ServiceState:
    owners = (service.get("metadata") or {}).get("ownerReferences") or []
    return ServiceState(owned=any(o.get("uid") == owner_uid and o.get("controller") for o in owners))


@dataclass(frozen=True)
class HeldPod:
    """A pod of an interruptible job that is being deleted (a pause) and that the operator's report
    finalizer holds until its report is read."""

    name: str
    terminated: bool
    """Its container has ended (the report, if any, is in `message`)."""
    message: str = ""
    started_at: str = ""
    finished_at: str = ""


def held_pod(pod: Mapping[str, Any]) -> HeldPod:
    """A held pod's first container's end, as the kubelet (or kwok) wrote it."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    term = ((statuses[0].get("state") or {}).get("terminated") if statuses else None) or {}
    return HeldPod(
        name=str((pod.get("metadata") or {}).get("name", "")),
        terminated=bool(term),
        message=str(term.get("message") or ""),
        started_at=str(term.get("startedAt") or ""),
        finished_at=str(term.get("finishedAt") or ""),
    )


@dataclass(frozen=True)
class PodsSummary:
    """The child's pods as the pod watch sees them."""

    unschedulable: int = 0
    message: str = ""
    """The scheduler's message for one unschedulable pod."""
    held: tuple[HeldPod, ...] = ()


@dataclass(frozen=True)
class MovableJob:
    """A deferred job that may be moved aside for another: its request and its current plan."""

    request: JobRequest
    decision: Decision


@dataclass(frozen=True)
class PendingMove:
    decision: Decision
    previous: Decision
    """The plan the move was computed against: if the job's plan changed since, the move is void."""
    for_job: str


@dataclass(frozen=True)
class LedgerView:
    """What the capacity ledger says, as one job's decision reads it. Live references into the
    ledger: valid until the actions of this decision are applied (nothing awaits in between)."""

    bookings: Mapping[str, Reservation]
    """Every other job's GPUs (and other pods' per region), by key, this job's own excluded."""
    movable: Mapping[str, MovableJob]
    """Other deferred jobs that may be moved aside (none with a pending move)."""
    columns: ReservationColumns | None = None
    """The same as columns, for the planner to read in numpy; None: build them from `bookings`."""
    pending_move: PendingMove | None = None
    in_burst: bool = False
    may_rescue: bool = True
    rescue: bool = False
    """This job was left late in a burst: it searches for room once the burst is over."""
    child_waits: bool = False
    """This job was deferred in a burst: its suspended child is created once the burst is over."""
    at_risk: bool = False
    memo: RepairMemo = field(default_factory=RepairMemo)


@dataclass(frozen=True)
class RegionData:
    forecast: RegionForecast
    result: ForecastResult


@dataclass(frozen=True)
class AccountingInputs:
    energy: EnergyTotal
    windows: AccountingWindows
    actual: ForecastResult
    baseline: ForecastResult


@dataclass(frozen=True)
class Observed:
    meta: JobMeta
    spec: TrainingJobSpec | Sequence[SpecProblem]
    status: Mapping[str, Any]
    """What the operator last wrote (it is the only writer), in whatever version wrote it."""
    child: ChildState | None
    """None: no child Job exists."""
    now: datetime
    settings: Settings
    ledger: LedgerView
    forecasts: Mapping[str, RegionData] = field(default_factory=dict)
    pods: PodsSummary = field(default_factory=PodsSummary)
    accounting: AccountingInputs | None = None
    live_energy: LiveEnergy | None = None
    live_energy_error: str | None = None
    """Why asking Prometheus for the live energy failed (unreachable, an error, a bad answer)."""
    service: ServiceState | None = None
    """The headless Service of a multi-pod job (None: absent, or a single-pod job)."""
