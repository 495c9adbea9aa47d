"""MultiKueue's external dispatcher, the I/O: watches, worker probes, writes, Events, timers.
Decides nothing (`dispatch.decide_dispatch` does).

- In the manager: AdmissionChecks whose controllerName is MultiKueue's (and their MultiKueueConfig's
  workers), MultiKueueClusters (`Active`), and Workloads carrying such a check.
- In each configured worker, with the kubeconfig mounted into the operator: nodes and pods, read every
  `multiKueue.probeInterval` (its free GPUs, and whether it answers), and a watch on its Job pods, whose
  termination-message reports are kept for accounting (the worker deletes its Job and pods about a
  second after they finish, and MultiKueue copies only the Job's status back).
- Nominating: our annotations (power limit, region, intensity) onto the manager Job's pod templates
  first (the remote Job is copied from it once, at creation), then `status.nominatedClusterNames` by
  server-side apply of the whole admission status as read, field manager `kueue-admission`, force
  (`multikueue.nomination_apply`). Holding and reactivating are the single-cluster check's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from green_operator.carbon.service import CarbonService
from green_operator.config import OperatorConfig, WorkerConfig
from green_operator.controller.actions import Book
from green_operator.controller.forecasts import ForecastCache
from green_operator.controller.kube import AsyncKube, JsonDict, load_client
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.recorder import EventRecorder
from green_operator.metrics import OperatorMetrics
from green_operator.planner import RegionForecast
from green_operator.regions import node_info
from green_operator.times import utcnow

from .accounting import POD_LABELS, needs_settling
from .controller import APPLY_PATCH, LEDGER_PREFIX, MERGE_PATCH, KueueCheckController, plan_patch, workloads_path
from .dispatch import NO_WORKER, Dispatch, DispatchSituation, Worker, decide_dispatch
from .multikueue import (
    ADMISSION_MANAGER,
    MULTIKUEUE_CONTROLLER,
    NotNominableError,
    nomination_apply,
    owner_path,
    owner_template_patch,
    worker_capacity,
)
from .workload import GROUP, VERSION, WorkloadView, workload_view

log = logging.getLogger(__name__)
KEPT_PODS = 5000
"""Finished worker pods kept for accounting (the oldest go first)."""
SETTLE_GRACE = timedelta(seconds=30)
"""How long after a workload finished its worker pods' reports are waited for."""
JOB_POD_LABEL = "batch.kubernetes.io/job-name"


@dataclass
class _WorkerState:
    reachable: bool = False
    free_gpus: int = 0
    gpu_model: str = ""
    why: str = "not read yet"


class MultiKueueDispatcher(KueueCheckController):
    def __init__(
        self,
        config: OperatorConfig,
        kube: AsyncKube,
        ledger: CapacityLedger,
        forecasts: ForecastCache,
        carbon: CarbonService,
        metrics: OperatorMetrics,
        namespaces: frozenset[str] = frozenset(),
        events: EventRecorder | None = None,
    ) -> None:
        super().__init__(config, config.kueue, kube, ledger, forecasts, carbon, metrics, namespaces, events)
        self.check_configs: dict[str, str] = {}
        """MultiKueue AdmissionCheck -> its MultiKueueConfig."""
        self.config_clusters: dict[str, tuple[str, ...]] = {}
        self.cluster_active: dict[str, tuple[bool, str]] = {}
        self.worker_state: dict[str, _WorkerState] = {w.cluster: _WorkerState() for w in config.workers}
        self.worker_pods: OrderedDict[str, JsonDict] = OrderedDict()
        """Finished pods seen in the workers, by uid (their reports outlive the pods)."""
        self.warned: set[str] = set()
        self.pod_watches: list[asyncio.Future[None]] = []
        self.probed = {w.cluster: asyncio.Event() for w in config.workers}
        """Set after a worker's first read (answered or not): decisions wait for every worker's."""

    # -- the manager's MultiKueue objects ---------------------------------------------------------

    def check_event(self, kind: str, obj: JsonDict) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        spec = obj.get("spec") or {}
        if kind == "DELETED" or spec.get("controllerName") != MULTIKUEUE_CONTROLLER:
            self.checks.discard(name)
            self.check_configs.pop(name, None)
            return
        new = name not in self.checks
        self.checks.add(name)
        self.check_configs[name] = str((spec.get("parameters") or {}).get("name") or "")
        if new:
            self._enqueue_waiting()

    def config_event(self, kind: str, obj: JsonDict) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if kind == "DELETED":
            self.config_clusters.pop(name, None)
        else:
            self.config_clusters[name] = tuple(str(c) for c in (obj.get("spec") or {}).get("clusters") or ())
        self._enqueue_waiting()

    def configs_relisted(self, items: list[JsonDict]) -> None:
        self.config_clusters.clear()
        for obj in items:
            self.config_event("ADDED", obj)

    def cluster_event(self, kind: str, obj: JsonDict) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        before = self.cluster_active.get(name, (False, ""))[0]
        if kind == "DELETED":
            self.cluster_active.pop(name, None)
        else:
            conds = (obj.get("status") or {}).get("conditions") or []
            active = next((c for c in conds if c.get("type") == "Active"), None)
            up = active is not None and active.get("status") == "True"
            why = (
                "" if up else f"MultiKueueCluster {name} not Active: {(active or {}).get('message') or 'no status yet'}"
            )
            self.cluster_active[name] = (up, why)
        if self.cluster_active.get(name, (False, ""))[0] != before:
            self._availability_changed(name)

    def clusters_relisted(self, items: list[JsonDict]) -> None:
        for obj in items:
            self.cluster_event("ADDED", obj)

    # -- the workers ------------------------------------------------------------------------------

    def workers(self) -> dict[str, Worker]:
        out: dict[str, Worker] = {}
        for w in self.config.workers:
            st = self.worker_state[w.cluster]
            active, why_inactive = self.cluster_active.get(w.cluster, (False, f"no MultiKueueCluster {w.cluster}"))
            why = why_inactive if not active else ("" if st.reachable else st.why)
            out[w.cluster] = Worker(w.cluster, w.region, active, st.reachable, st.free_gpus, why)
        return out

    def _availability_changed(self, cluster: str) -> None:
        """A worker came or went: waiting workloads are decided again, and a workload held for a
        worker that went is reactivated now, to be planned over the others."""
        self._enqueue_waiting()
        worker = self.workers().get(cluster)
        if worker is None or worker.available:
            return
        for key, body in list(self.workloads.items()):
            wl = workload_view(body)
            if not wl.active and wl.held_until is not None and (wl.plan or {}).get("cluster") == cluster:
                self._reactivate_soon(key)

    def _enqueue_waiting(self) -> None:
        for key, body in self.workloads.items():
            st = body.get("status") or {}
            if self._wants(body) and not st.get("clusterName"):
                self._enqueue(key)

    async def _probe(self, w: WorkerConfig) -> None:
        """Read the worker's nodes and pods every probe interval: free GPUs, and whether it answers."""
        interval = self.config.multikueue.probe_interval.total_seconds()
        kube: AsyncKube | None = None
        try:
            while True:
                st = self.worker_state[w.cluster]
                was = st.reachable
                try:
                    if kube is None:
                        kube = AsyncKube(await load_client(str(w.kubeconfig), pool_size=4), timeout=max(interval, 5.0))
                        self._start_pod_watch(w, kube)
                    nodes, _ = await kube.list_all("/api/v1/nodes", [])
                    pods, _ = await kube.list_all(
                        "/api/v1/pods", [("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")]
                    )
                    region = self.config.region(w.region)
                    assert region is not None  # validated with the configuration
                    cap = worker_capacity(region, (node_info(n) for n in nodes), pods)
                    st.reachable, st.free_gpus, st.gpu_model, st.why = True, cap.free, cap.gpu_model, ""
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # unreachable, refused, a bad kubeconfig: the worker is unavailable
                    st.reachable, st.why = False, f"worker {w.cluster} does not answer: {exc}"[:300]
                    if was or not self.probed[w.cluster].is_set():
                        log.warning("%s", st.why)
                if st.reachable != was:
                    self._availability_changed(w.cluster)
                self.probed[w.cluster].set()
                await asyncio.sleep(interval)
        finally:
            if kube is not None:
                await kube.close()

    def _start_pod_watch(self, w: WorkerConfig, kube: AsyncKube) -> None:
        def pod_event(kind: str, obj: JsonDict) -> None:
            phase = (obj.get("status") or {}).get("phase")
            uid = str((obj.get("metadata") or {}).get("uid"))
            if phase in ("Succeeded", "Failed"):
                self.worker_pods[uid] = _slim_pod(obj, w.cluster)
                self.worker_pods.move_to_end(uid)
                while len(self.worker_pods) > KEPT_PODS:
                    self.worker_pods.popitem(last=False)

        def relisted(items: list[JsonDict]) -> None:
            for obj in items:
                pod_event("ADDED", obj)

        # Every Job's pods carry the job-name label, a JobSet's too (its replicated jobs are Jobs).
        query = [("labelSelector", JOB_POD_LABEL)]
        self.pod_watches.append(asyncio.ensure_future(kube.informer("/api/v1/pods", pod_event, relisted, query=query)))

    # -- deciding ---------------------------------------------------------------------------------

    async def _forecasts(self, regions: list[str]) -> dict[str, RegionForecast | None]:
        out: dict[str, RegionForecast | None] = {}
        states = {w.region: self.worker_state[w.cluster] for w in self.config.workers}
        for region in regions:
            cfg = self.config.region(region)
            if cfg is None:
                out[region] = None
                continue
            try:
                data = await self.forecasts.get(cfg, utcnow(), ())
            except Exception as exc:  # any provider failure: that region has no carbon data
                log.warning("no forecast for %s: %s", region, exc)
                out[region] = None
                continue
            st = states[region]
            out[region] = replace(data.forecast, capacity_gpus=st.free_gpus, gpu_model=st.gpu_model or "unknown")
        return out

    async def process(self, key: str) -> None:
        body = self.workloads.get(key)
        if body is None:
            return
        wl = workload_view(body)
        if needs_settling(wl):
            await self._settle(wl)
        for check in wl.check_names(frozenset(self.checks)):
            clusters = self.config_clusters.get(self.check_configs.get(check, ""), ())
            workers = self.workers()
            waiting = wl.quota_reserved_at is not None and wl.cluster_name is None and not wl.finished
            regions = [workers[c].region for c in clusters if c in workers and workers[c].available]
            forecasts = await self._forecasts(regions) if waiting else {}
            if self.workloads.get(key) is not body:
                self._enqueue(key)  # changed while we waited: decide on the newer one
                return
            now = utcnow()
            lkey = LEDGER_PREFIX + key
            view = self.ledger.view(lkey, now)
            d = decide_dispatch(
                DispatchSituation(
                    wl,
                    check,
                    now,
                    clusters,
                    workers,
                    forecasts,
                    view.bookings,
                    self.config.planner,
                    self.settings,
                    self.config.multikueue,
                )
            )
            if d.rebook:
                self.ledger.apply(lkey, Book(d.booking))
            await self._dispatch(wl, d)

    async def _dispatch(self, wl: WorkloadView, d: Dispatch) -> None:
        patch = plan_patch(d.plan, d.hold_until)
        if d.nominate:
            # The plan first (accounting reads it), then the power limit onto the manager Job, whose
            # copy the worker gets, then the nomination.
            if patch:
                await self.kube.call("PATCH", workloads_path(wl.namespace, wl.name), patch, MERGE_PATCH)
            if d.pod_set_updates:
                await self._annotate_owner(wl, d)
            await self._nominate(wl, d.nominate)
        else:
            if d.nominate is not None and wl.nominated:
                await self._nominate(wl, ())  # clear a lost worker's nomination while the quota is held
            if patch:
                await self.kube.call("PATCH", workloads_path(wl.namespace, wl.name), patch, MERGE_PATCH)
        if d.nominate or d.plan is not None:
            self.metrics.record_decision("started" if d.nominate else "deferred", False)
        for e in d.events:
            if e.reason == NO_WORKER:
                if wl.key in self.warned:
                    continue
                self.warned.add(wl.key)
            if d.nominate or d.plan is not None or e.reason == NO_WORKER:
                self._emit(wl, e)
        if d.wake_after is not None:
            self._wake_later(wl.key, d.wake_after)

    async def _annotate_owner(self, wl: WorkloadView, d: Dispatch) -> None:
        """Our annotations onto the suspended manager Job's pod templates, before the nomination:
        the remote Job is copied from it once, when MultiKueue creates it."""
        o = wl.owner
        path = owner_path(wl.namespace, o.kind, o.name) if o is not None else None
        if o is None or path is None:
            return
        owner = await self.kube.call("GET", path)
        patch = owner_template_patch(o.kind, owner, d.pod_set_updates)
        if patch is not None:
            await self.kube.call("PATCH", path, patch, MERGE_PATCH)

    async def _nominate(self, wl: WorkloadView, clusters: tuple[str, ...]) -> None:
        """As Kueue's own dispatcher test does: the whole admission status as read now, with its
        resourceVersion (a stale one fails with 409 and the decision is retried)."""
        fresh = await self.kube.call("GET", workloads_path(wl.namespace, wl.name))
        try:
            body = nomination_apply(fresh, clusters)
        except NotNominableError as exc:
            log.info("not nominating %s: %s", wl.key, exc)
            return
        if not clusters:
            del body["status"]["nominatedClusterNames"]  # omitted: Kueue's manager owned it, so it goes
        await self.kube.call(
            "PATCH",
            workloads_path(wl.namespace, wl.name, "status"),
            body,
            APPLY_PATCH,
            [("fieldManager", ADMISSION_MANAGER), ("force", "true")],
        )

    # -- accounting -------------------------------------------------------------------------------

    async def _settle(self, wl: WorkloadView) -> None:
        """As the single-cluster check settles, with the pods (and their reports) seen in the worker
        and the worker region's intensity (the plan's region)."""
        plan = wl.plan or {}
        cluster = str(plan.get("cluster") or wl.cluster_name or "")
        o = wl.owner
        label = POD_LABELS.get(o.kind) if o is not None else None
        pods = [
            p
            for p in self.worker_pods.values()
            if o is not None
            and label is not None
            and p["_cluster"] == cluster
            and (p.get("metadata") or {}).get("namespace") == wl.namespace
            and ((p.get("metadata") or {}).get("labels") or {}).get(label) == o.name
        ]
        if not pods and wl.finished_at is not None and utcnow() - wl.finished_at < SETTLE_GRACE:
            self._wake_later(wl.key, 2.0)  # the worker's pod events may still be on their way
            return
        await self._settle_from(wl, pods, f"in worker {cluster}: ")

    # -- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch and dispatch until cancelled; workloads are decided once the checks, configs and
        clusters are listed."""
        listed = [asyncio.Event(), asyncio.Event(), asyncio.Event()]
        kube = self.kube
        base = f"/apis/{GROUP}/{VERSION}"
        tasks: list[asyncio.Future[None]] = [
            asyncio.ensure_future(
                kube.informer(f"{base}/admissionchecks", self.check_event, self.checks_relisted, ready=listed[0])
            ),
            asyncio.ensure_future(
                kube.informer(f"{base}/multikueueconfigs", self.config_event, self.configs_relisted, ready=listed[1])
            ),
            asyncio.ensure_future(
                kube.informer(f"{base}/multikueueclusters", self.cluster_event, self.clusters_relisted, ready=listed[2])
            ),
            *(asyncio.ensure_future(self._probe(w)) for w in self.config.workers),
        ]
        try:
            await asyncio.gather(*(e.wait() for e in (*listed, *self.probed.values())))
            tasks.append(
                asyncio.ensure_future(kube.informer(workloads_path(), self.workload_event, self.workloads_relisted))
            )
            tasks += [asyncio.ensure_future(self._worker()) for _ in range(8)]
            self.ready.set()
            log.info("MultiKueue dispatcher started: workers %s", [w.cluster for w in self.config.workers])
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            tasks += self.pod_watches
            for t in self.pod_watches:
                t.cancel()
            for timer in (*self.timers.values(), *self.reactivations.values()):
                timer.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _slim_pod(obj: Mapping[str, Any], cluster: str) -> JsonDict:
    """What accounting reads of a finished pod (labels, containers' resources, statuses, reports)."""
    meta = obj.get("metadata") or {}
    return {
        "_cluster": cluster,
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "annotations")},
        "spec": {"containers": (obj.get("spec") or {}).get("containers") or []},
        "status": obj.get("status") or {},
    }
