"""Applies a decision's actions: the ledger's at once (nothing awaits in between, so no other job
sees capacity half-updated), then the API calls in order, then the metrics. Decides nothing.

Idempotent: the child's name is deterministic; a 409 on create means it exists already, and it is
adopted after checking that this GreenTrainingJob owns it (the batch stops there, so the next
decision sees the child as it is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from green_operator.api.manifests import job_name
from green_operator.metrics import OperatorMetrics

from .actions import (
    Action,
    ApiAction,
    CreateChild,
    CreateService,
    Done,
    Emit,
    PatchChild,
    RecordDecision,
    RecordFinish,
    RecordRelease,
    RecreateChild,
    Requeue,
    SetSuspended,
    WriteStatus,
    split,
)
from .kube import AsyncKube, JsonDict, KubeApiError, gtj_path, job_path, service_path
from .ledger import CapacityLedger
from .observed import JobMeta, ServiceState, service_state

EventPoster = Callable[[Mapping[str, Any], str, str, bool], None]
"""(the GreenTrainingJob's body, reason, message, warning): post a Kubernetes Event."""


@dataclass
class Outcome:
    requeue: float | None = None
    done: bool = False
    status: JsonDict | None = None
    """The status as the last write left it."""
    status_rv: int = 0
    child: JsonDict | None = None
    """The child as the last call on it returned it."""
    child_known: bool = False
    gone: bool = False
    """The GreenTrainingJob no longer exists."""
    service: ServiceState | None = None
    """The headless Service as a create (or the adoption after a 409) found it."""


def record(metrics: OperatorMetrics, namespace: str, action: Action) -> None:
    match action:
        case RecordDecision(outcome, at_risk, region, expected, baseline, first):
            metrics.record_decision(outcome, at_risk)
            if first:
                metrics.planned_grams.labels(region).inc(expected)
                metrics.planned_baseline_grams.labels(region).inc(baseline)
        case RecordRelease(waited):
            metrics.deferral_seconds.observe(waited)
        case RecordFinish(phase, region, accounting):
            metrics.finished.labels(namespace, phase).inc()
            accounting.record_metrics(metrics, namespace, region)


class ApiExecutor:
    def __init__(
        self, kube: AsyncKube, ledger: CapacityLedger, metrics: OperatorMetrics, post_event: EventPoster
    ) -> None:
        self.kube = kube
        self.ledger = ledger
        self.metrics = metrics
        self.post_event = post_event

    async def execute(self, meta: JobMeta, body: Mapping[str, Any], actions: Sequence[Action]) -> Outcome:
        ledger_now, rest, recorded = split(actions)
        for la in ledger_now:
            self.ledger.apply(meta.key, la)
        try:
            return await self._apply(meta, body, rest)
        finally:
            for pr in recorded:
                self.ledger.apply(meta.key, pr)

    async def _apply(self, meta: JobMeta, body: Mapping[str, Any], actions: Sequence[Action]) -> Outcome:
        out = Outcome()
        for a in actions:
            match a:
                case Requeue(after):
                    out.requeue = after
                case Done():
                    out.done = True
                case RecordDecision() | RecordRelease() | RecordFinish():
                    record(self.metrics, meta.namespace, a)
                case Emit(reason, message, warning):
                    self.post_event(body, reason, message, warning)
                case _:
                    if not await self._api(meta, a, out):  # type: ignore[arg-type]
                        out.requeue = 0.0
                        return out
        return out

    async def _api(self, meta: JobMeta, a: ApiAction, out: Outcome) -> bool:
        """One API call; False stops the batch (the child turned out to exist, or the job is gone)."""
        name = job_name(meta.name)
        match a:
            case CreateChild(manifest):
                return await self._create(meta, manifest, out)
            case RecreateChild(manifest):
                await self.kube.delete(job_path(meta.namespace, name))
                return await self._create(meta, manifest, out)
            case CreateService(manifest):
                return await self._create_service(meta, manifest, out)
            case PatchChild(patch):
                try:
                    out.child = await self.kube.merge_patch(job_path(meta.namespace, name), patch)
                except KubeApiError as exc:
                    if exc.status != 404:
                        raise
                    out.child = None  # gone: the next decision sees it so
                out.child_known = True
            case SetSuspended(suspended):
                patch = {"spec": {"suspend": suspended}}
                out.child, out.child_known = await self.kube.merge_patch(job_path(meta.namespace, name), patch), True
            case WriteStatus(patch):
                try:
                    result = await self.kube.merge_patch(
                        gtj_path(meta.namespace, meta.name) + "/status", {"status": patch}
                    )
                except KubeApiError as exc:
                    if exc.status != 404:
                        raise
                    out.gone = out.done = True
                    return False
                out.status = dict(result.get("status") or {})
                out.status_rv = int((result.get("metadata") or {}).get("resourceVersion") or 0)
                self.ledger.observe_status(meta.key, out.status)
        return True

    async def _create_service(self, meta: JobMeta, manifest: Mapping[str, Any], out: Outcome) -> bool:
        """Create the headless Service; one already there is adopted if this job owns it (a previous
        process made it), else the batch stops and the next decision reports the conflict."""
        try:
            out.service = service_state(await self.kube.create(service_path(meta.namespace), manifest), meta.uid)
            return True
        except KubeApiError as exc:
            if exc.status != 409:
                raise
        found = await self.kube.get_or_none(service_path(meta.namespace, manifest["metadata"]["name"]))
        if found is None:
            return False  # deleted meanwhile: the next decision creates it again
        out.service = service_state(found, meta.uid)
        return out.service.owned

    async def _create(self, meta: JobMeta, manifest: Mapping[str, Any], out: Outcome) -> bool:
        path = job_path(meta.namespace)
        try:
            out.child, out.child_known = await self.kube.create(path, manifest), True
            return True
        except KubeApiError as exc:
            if exc.status != 409:
                raise
        # It exists: created by a previous process that died before writing status, or by someone
        # else, or still being deleted. Stop here; the next decision sees it as it is.
        out.child = await self.kube.get_or_none(job_path(meta.namespace, job_name(meta.name)))
        out.child_known = True
        return False
