"""The carbon AdmissionCheck controller's I/O: watches, writes, Events, timers. Decides nothing
(`admission.decide` does).

- AdmissionChecks whose `controllerName` is ours are kept `Active=True` (else their ClusterQueues
  stay inactive and nothing reserves quota).
- ResourceFlavors are watched for their node labels: the flavor Kueue assigned names the region.
- Workloads are watched cluster-wide; one carrying a check of ours is decided whenever it changes
  (a new quota reservation is a change) and when a timer it asked for fires.
- Our entry of `status.admissionChecks` is written by server-side apply, field manager
  `FIELD_MANAGER`, with force: other entries are untouched (a merge patch would replace the list).
- The plan is kept in the Workload's `greentraining.io/plan` annotation (eviction resets the
  check's message); Events go to the Workload's controller owner, the user's Job or JobSet.
- Held workloads are booked in the same capacity ledger as GreenTrainingJobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from green_operator.accounting.settle import accounting_windows, settle, total_energy
from green_operator.api.events import ObjectRef
from green_operator.api.spec import gpus_in_template
from green_operator.carbon.service import CarbonService
from green_operator.config import OperatorConfig
from green_operator.controller.actions import Book
from green_operator.controller.forecasts import ForecastCache
from green_operator.controller.kube import AsyncKube, JsonDict, KubeApiError, q
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.recorder import EventRecorder
from green_operator.metrics import OperatorMetrics
from green_operator.planner import RegionForecast
from green_operator.times import rfc3339, utcnow

from .accounting import ANN_RESULT, needs_settling, pod_selector, result_annotation, status_like
from .admission import CheckUpdate, Event, KueueSettings, Situation, Verdict, decide, reactivate_after
from .inputs import ANN_DURATION
from .workload import (
    ANN_HELD_UNTIL,
    ANN_PLAN,
    CONTROLLER_NAME,
    GROUP,
    VERSION,
    WorkloadView,
    flavor_region,
    workload_view,
)

FIELD_MANAGER = "green-training-operator-kueue"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
LEDGER_PREFIX = "kueue/"
"""Ledger keys of Kueue workloads, apart from GreenTrainingJobs' namespace/name keys."""
WORKERS = 8
"""Workloads decided at once: each decision waits mostly on API writes (and Kueue's webhooks)."""
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
log = logging.getLogger(__name__)


def workloads_path(namespace: str | None = None, name: str = "", sub: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{q(namespace)}" if namespace else "") + "/workloads"
    return base + (f"/{q(name)}" if name else "") + (f"/{sub}" if sub else "")


def check_apply(wl: WorkloadView, check: str, u: CheckUpdate, now: datetime) -> JsonDict:
    """The apply configuration of our entry only: Kueue requires the entry's four fields."""
    current = wl.checks.get(check)
    entry: JsonDict = {
        "name": check,
        "state": u.state,
        "message": u.message[:32768],
        # A new state starts now (Kueue times `Retry`'s requeueAfterSeconds from it).
        "lastTransitionTime": rfc3339(now)
        if current is None or current.state != u.state or not current.last_transition
        else current.last_transition,
    }
    if u.requeue_after_seconds is not None:
        entry["requeueAfterSeconds"] = u.requeue_after_seconds
    if u.pod_set_updates:
        entry["podSetUpdates"] = [dict(p) for p in u.pod_set_updates]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workload",
        "metadata": {"name": wl.name, "namespace": wl.namespace},
        "status": {"admissionChecks": [entry]},
    }


def plan_patch(plan: Mapping[str, Any] | None, hold_until: datetime | None) -> JsonDict:
    """The Workload merge patch that records a plan and, while the start is far, holds it:
    deactivated, Kueue evicts it and gives the quota back (our Pending entry and its message survive
    eviction); it is reactivated at `hold_until` (see the decision record). Empty: nothing to write."""
    annotations: dict[str, Any] = {}
    if plan is not None:
        annotations[ANN_PLAN] = json.dumps(plan, separators=(",", ":"))
    patch: JsonDict = {}
    if hold_until is not None:
        annotations[ANN_HELD_UNTIL] = rfc3339(hold_until)
        patch["spec"] = {"active": False}
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return patch


class KueueCheckController:
    def __init__(
        self,
        config: OperatorConfig,
        settings: KueueSettings,
        kube: AsyncKube,
        ledger: CapacityLedger,
        forecasts: ForecastCache,
        carbon: CarbonService,
        metrics: OperatorMetrics,
        namespaces: frozenset[str] = frozenset(),
        events: EventRecorder | None = None,
    ) -> None:
        self.config = config
        self.events = events or EventRecorder(kube)
        self.settings = settings
        self.kube = kube
        self.ledger = ledger
        self.forecasts = forecasts
        self.carbon = carbon
        self.metrics = metrics
        self.namespaces = namespaces
        """Act only on Workloads in these (empty: every namespace), like the rest of the operator."""
        self.checks: set[str] = set()
        self.flavors: dict[str, Mapping[str, str]] = {}
        self.workloads: dict[str, JsonDict] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued: set[str] = set()
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.reactivations: dict[str, asyncio.TimerHandle] = {}
        self.decided = 0
        """Check states written (for the benchmark and the logs)."""
        self.ready = asyncio.Event()
        self.posting: set[asyncio.Task[None]] = set()

    # -- the watches -------------------------------------------------------------------------------

    def _enqueue(self, key: str) -> None:
        if key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait(key)

    def _wants(self, body: Mapping[str, Any]) -> bool:
        return any(c.get("name") in self.checks for c in (body.get("status") or {}).get("admissionChecks") or [])

    def workload_event(self, kind: str, obj: JsonDict) -> None:
        meta = obj.get("metadata") or {}
        if self.namespaces and meta.get("namespace") not in self.namespaces:
            return
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if kind == "DELETED":
            self.workloads.pop(key, None)
            self.ledger.forget(LEDGER_PREFIX + key)
            for timers in (self.timers, self.reactivations):
                timer = timers.pop(key, None)
                if timer is not None:
                    timer.cancel()
            return
        self.workloads[key] = _slim(obj)
        if self._wants(obj):
            self._enqueue(key)
            if (obj.get("spec") or {}).get("active") is False:
                self._schedule_reactivation(key)

    def workloads_relisted(self, items: list[JsonDict]) -> None:
        self.workloads.clear()
        for obj in items:
            self.workload_event("ADDED", obj)

    def check_event(self, kind: str, obj: JsonDict) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if kind == "DELETED" or (obj.get("spec") or {}).get("controllerName") != CONTROLLER_NAME:
            self.checks.discard(name)
            return
        new = name not in self.checks
        self.checks.add(name)
        conds = (obj.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Active" and c.get("status") == "True" for c in conds):
            task = asyncio.get_running_loop().create_task(self._activate(name), name=f"activate {name}")
            self.posting.add(task)
            task.add_done_callback(self.posting.discard)
        if new:  # workloads that were waiting for us
            for key, body in self.workloads.items():
                if self._wants(body):
                    self._enqueue(key)

    def checks_relisted(self, items: list[JsonDict]) -> None:
        self.checks.clear()
        for obj in items:
            self.check_event("ADDED", obj)

    def flavor_event(self, kind: str, obj: JsonDict) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if kind == "DELETED":
            self.flavors.pop(name, None)
        else:
            self.flavors[name] = dict((obj.get("spec") or {}).get("nodeLabels") or {})

    def flavors_relisted(self, items: list[JsonDict]) -> None:
        self.flavors.clear()
        for obj in items:
            self.flavor_event("ADDED", obj)

    async def _activate(self, name: str) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AdmissionCheck",
            "metadata": {"name": name},
            "status": {
                "conditions": [
                    {
                        "type": "Active",
                        "status": "True",
                        "reason": "Active",
                        "message": "The green-training-operator serves this check",
                        "lastTransitionTime": rfc3339(utcnow()),
                    }
                ]
            },
        }
        path = f"/apis/{GROUP}/{VERSION}/admissionchecks/{q(name)}/status"
        try:
            await self.kube.call("PATCH", path, body, APPLY_PATCH, [("fieldManager", FIELD_MANAGER), ("force", "true")])
        except KubeApiError as exc:
            log.warning("could not mark AdmissionCheck %s Active: %s", name, exc)

    # -- deciding ---------------------------------------------------------------------------------

    def region_of(self, wl: WorkloadView) -> str:
        for flavor in wl.flavors:
            region = flavor_region(self.flavors.get(flavor, {}), self.config.regions)
            if region is not None:
                return region
        return self.config.regions[0].name

    async def _forecast(self, region: str) -> RegionForecast | None:
        cfg = self.config.region(region)
        if cfg is None:
            return None
        try:
            data = await self.forecasts.get(cfg, utcnow(), self.ledger.nodes.values())
        except Exception as exc:  # any provider failure: decide without carbon data
            log.warning("no forecast for %s: %s", region, exc)
            return None
        return data.forecast

    async def process(self, key: str) -> None:
        body = self.workloads.get(key)
        if body is None:
            return
        wl = workload_view(body)
        if needs_settling(wl):
            await self._settle(wl)
        for check in wl.check_names(frozenset(self.checks)):
            region = self.region_of(wl)
            mine = wl.checks[check]
            wants_data = (
                mine.state == "Pending"
                and wl.quota_reserved_at is not None
                and any(ANN_DURATION in ps.annotations for ps in wl.pod_sets)
            )
            forecast = await self._forecast(region) if wants_data else None
            if self.workloads.get(key) is not body:
                self._enqueue(key)  # changed while we waited: decide on the newer one
                return
            now = utcnow()
            lkey = LEDGER_PREFIX + key
            view = self.ledger.view(lkey, now)
            verdict = decide(
                Situation(wl, check, now, region, forecast, view.bookings, self.config.planner, self.settings)
            )
            if verdict.rebook:
                self.ledger.apply(lkey, Book(verdict.booking))
            await self._apply(wl, check, verdict, now)

    async def _apply(self, wl: WorkloadView, check: str, v: Verdict, now: datetime) -> None:
        current = wl.checks.get(check)
        changed = v.update is not None and (
            current is None or (current.state, current.message) != (v.update.state, v.update.message)
        )
        if v.update is not None and changed:
            await self.kube.call(
                "PATCH",
                workloads_path(wl.namespace, wl.name, "status"),
                check_apply(wl, check, v.update, now),
                APPLY_PATCH,
                [("fieldManager", FIELD_MANAGER), ("force", "true")],
            )
            self.decided += 1
            self.metrics.record_decision(_outcome(v.update), False)
        patch = plan_patch(v.plan, v.hold_until)
        if patch:
            await self.kube.call("PATCH", workloads_path(wl.namespace, wl.name), patch, MERGE_PATCH)
        if changed or v.plan is not None:
            for e in v.events:
                self._emit(wl, e)
        if v.wake_after is not None:
            self._wake_later(wl.key, v.wake_after)

    async def _settle(self, wl: WorkloadView) -> None:
        """Energy, emissions and savings of a finished workload we planned: the same arithmetic,
        metrics and report as GreenTrainingJobs; kept in its `greentraining.io/result` annotation."""
        selector = pod_selector(wl)
        pods = await self.kube.list_pods(wl.namespace, selector) if selector else []
        await self._settle_from(wl, pods)

    async def _settle_from(self, wl: WorkloadView, pods: list[JsonDict], where: str = "") -> None:
        """Settle from these pods (their reports, else their run time) at the plan's region's
        intensity; `where` prefixes the Event's message."""
        plan = wl.plan or {}
        region = str(plan.get("region") or self.config.regions[0].name)
        gpus_per_pod = max((gpus_in_template(ps.template) for ps in wl.pod_sets), default=0)
        limit = plan.get("powerLimitWatts")
        watts = float(limit) if limit else self.config.planner.default_gpu_watts
        energy = total_energy(pods, gpus_per_pod, watts)
        status = status_like(wl)
        windows = accounting_windows(status, wl.admitted_at, wl.finished_at, region, utcnow())
        a, b = windows.actual, windows.baseline
        actual = await self.carbon.history_async(a.region, a.start, a.end)
        fetch = self.carbon.history_async if b.history else self.carbon.forecast_async
        baseline = await fetch(b.region, b.start, b.end)
        acc = settle(status, energy, windows, actual, baseline)
        patch = {"metadata": {"annotations": {ANN_RESULT: result_annotation(wl, acc)}}}
        await self.kube.call("PATCH", workloads_path(wl.namespace, wl.name), patch, MERGE_PATCH)
        self.metrics.finished.labels(wl.namespace, status["phase"]).inc()
        acc.record_metrics(self.metrics, wl.namespace, region)
        self._emit(wl, Event("CarbonAccounted", where + acc.summary(str(status["phase"]))))

    def _emit(self, wl: WorkloadView, e: Event) -> None:
        """An Event on the user's Job or JobSet (the Workload when it has no owner), posted from its
        own task: never on the decision's path."""
        o = wl.owner
        ref = (
            ObjectRef(o.api_version, o.kind, wl.namespace, o.name, o.uid)
            if o is not None
            else ObjectRef(f"{GROUP}/{VERSION}", "Workload", wl.namespace, wl.name, wl.uid)
        )
        self.events.post_on(ref, e.reason, e.message, e.warning)

    def _schedule_reactivation(self, key: str) -> None:
        body = self.workloads.get(key)
        after = reactivate_after(workload_view(body), utcnow()) if body is not None else None
        old = self.reactivations.pop(key, None)
        if old is not None:
            old.cancel()
        if after is not None:
            loop = asyncio.get_running_loop()
            self.reactivations[key] = loop.call_later(after, self._reactivate_soon, key)

    def _reactivate_soon(self, key: str) -> None:
        self.reactivations.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._reactivate(key))
        self.posting.add(task)
        task.add_done_callback(self.posting.discard)

    async def _reactivate(self, key: str) -> None:
        """Queue a Workload we deactivated again: its pending window has come."""
        namespace, name = key.split("/", 1)
        patch = {"metadata": {"annotations": {ANN_HELD_UNTIL: None}}, "spec": {"active": True}}
        for delay in (*BACKOFF, None):
            try:
                await self.kube.call("PATCH", workloads_path(namespace, name), patch, MERGE_PATCH)
                return
            except KubeApiError as exc:
                if exc.status == 404 or delay is None:
                    if exc.status != 404:
                        log.error("could not reactivate workload %s: %s", key, exc)
                    return
                await asyncio.sleep(delay)

    def _wake_later(self, key: str, seconds: float) -> None:
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self.timers[key] = loop.call_later(max(seconds, 0.05), self._enqueue, key)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            self.queued.discard(key)
            for attempt in range(len(BACKOFF) + 1):
                try:
                    await self.process(key)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if attempt == len(BACKOFF):
                        log.exception("deciding workload %s failed; waiting for its next change", key)
                        break
                    if isinstance(exc, KubeApiError) and exc.status == 404:
                        break  # deleted meanwhile
                    log.warning("deciding workload %s failed: %s; retrying", key, exc)
                    await asyncio.sleep(BACKOFF[attempt])

    async def run(self) -> None:
        """Watch and decide until cancelled. Workloads are decided once the checks and flavors
        are listed (a workload of an unknown check is not ours yet)."""
        listed = [asyncio.Event(), asyncio.Event()]
        kube = self.kube
        tasks = [
            asyncio.ensure_future(
                kube.informer(
                    f"/apis/{GROUP}/{VERSION}/admissionchecks",
                    self.check_event,
                    self.checks_relisted,
                    ready=listed[0],
                )
            ),
            asyncio.ensure_future(
                kube.informer(
                    f"/apis/{GROUP}/{VERSION}/resourceflavors",
                    self.flavor_event,
                    self.flavors_relisted,
                    ready=listed[1],
                )
            ),
        ]
        try:
            await asyncio.gather(*(e.wait() for e in listed))
            tasks.append(
                asyncio.ensure_future(kube.informer(workloads_path(), self.workload_event, self.workloads_relisted))
            )
            tasks += [asyncio.ensure_future(self._worker()) for _ in range(WORKERS)]
            self.ready.set()
            log.info("kueue carbon check controller started (controllerName %s)", CONTROLLER_NAME)
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for timer in (*self.timers.values(), *self.reactivations.values()):
                timer.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)


def _outcome(u: CheckUpdate) -> str:
    return "started" if u.state == "Ready" else "deferred"


def _slim(obj: Mapping[str, Any]) -> JsonDict:
    """The Workload as kept: managedFields are never read and are most of its size."""
    meta = obj.get("metadata") or {}
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
