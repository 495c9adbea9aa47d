"""Drives each GreenTrainingJob this operator acts on: observe (gather what `needs` names), decide
(`reconcile`), apply (the executor), then sleep until the requeue or a wake-up. One asyncio task
per job, started on its first watch event and stopped on deletion; a task that fails is restarted
with backoff, so a transient API error never strands a job.

No kopf daemons (they put a finalizer on every job: two writes and a watch round-trip before the
first decision); nothing here needs one, since the child goes with its owner by owner references.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from green_operator.accounting.live_energy import LiveEnergy, energy_query, parse_energy
from green_operator.accounting.node_agent import parse_pod_energy, pod_energy_query
from green_operator.accounting.segments import segmented_windows
from green_operator.accounting.settle import accounting_windows, reportless_pods, total_energy
from green_operator.api.manifests import job_name
from green_operator.api.phase import Phase
from green_operator.api.spec import TrainingJobSpec
from green_operator.carbon.service import CarbonService
from green_operator.config import OperatorConfig
from green_operator.metrics import OperatorMetrics
from green_operator.times import utcnow

from .actions import Action, RecordDecision, RecordRelease
from .executor import ApiExecutor
from .forecasts import ForecastCache
from .kube import AsyncKube, JsonDict, job_path, service_path
from .ledger import CapacityLedger
from .observed import (
    AccountingInputs,
    ChildState,
    JobMeta,
    Observed,
    ServiceState,
    Settings,
    child_state,
    service_state,
    slim_child,
)
from .reconcile import needs, observe_spec, reconcile
from .recorder import EventRecorder

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
SHUTDOWN_GRACE = 10.0
MAX_SLEEP = 3600.0
# The node agent keeps an ended pod's series this long (node_agent.energy linger) for the last scrape.
NODE_AGENT_LINGER_SECONDS = 600
log = logging.getLogger(__name__)


def settings_of(config: OperatorConfig) -> Settings:
    return Settings(
        regions={r.name: r for r in config.regions},
        planner=config.planner,
        replan_interval=config.replan_interval,
        metrics_port=config.trainer_metrics_port,
        grant_power_limit_capability=config.grant_power_limit_capability,
        live_energy_interval=config.live_energy_interval if config.prometheus_url else None,
    )


def without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as kept: managedFields (a field list per writer, often most of the object's
    size) are never read, and a thousand jobs' worth is tens of MiB."""
    meta = obj.get("metadata") or {}
    if "managedFields" not in meta:
        return dict(obj)
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _reconcile_label(actions: list[Action]) -> str | None:
    for a in actions:
        if isinstance(a, RecordDecision):
            return "replan" if not a.first else "plan"
    return "release" if any(isinstance(a, RecordRelease) for a in actions) else None


class Controller:
    def __init__(
        self,
        config: OperatorConfig,
        carbon: CarbonService,
        kube: AsyncKube,
        metrics: OperatorMetrics,
    ) -> None:
        self.config = config
        self.settings = settings_of(config)
        self.carbon = carbon
        self.kube = kube
        self.metrics = metrics
        self.ledger = CapacityLedger(self.settings.regions, config.planner.horizon, wake=self.poke)
        self.forecasts = ForecastCache(carbon, config.planner, config.forecast_refresh)
        self.events = EventRecorder(kube)
        self.executor = ApiExecutor(kube, self.ledger, metrics, self.events.post)
        self.ready = asyncio.Event()
        """Set once the ledger's watches have listed everything: no decision before."""
        self.bodies: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, tuple[int, dict[str, Any]]] = {}
        """The status this process last wrote, with its resourceVersion: newer than the watch's."""
        self.children: dict[str, JsonDict | None] = {}
        """Known child Jobs (None: known to be absent)."""
        self.by_child: dict[tuple[str, str], str] = {}
        self.services: dict[str, ServiceState] = {}
        """Multi-pod jobs' headless Services known to exist and be theirs (read once, then trusted)."""
        self.phases: dict[str, str] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stops: dict[str, asyncio.Event] = {}
        self.wakeups: dict[str, asyncio.Event] = {}
        self._http: aiohttp.ClientSession | None = None
        metrics.track_jobs(lambda: list(self.phases.values()), lambda: len(self.ledger.at_risk & self.phases.keys()))

    # -- what the watches say --------------------------------------------------------------------

    def observe(self, key: str, body: Mapping[str, Any]) -> None:
        """A GreenTrainingJob this operator acts on was created or changed."""
        body = without_managed_fields(body)
        old = self.bodies.get(key)
        self.bodies[key] = body
        status = body.get("status") or {}
        if old is None:
            self.ledger.first_seen(key, status)
            self._hold_events()
            meta = body["metadata"]
            self.by_child[(meta["namespace"], job_name(meta["name"]))] = key
        written = self.statuses.get(key)
        if written is not None and _rv(body) >= written[0]:
            del self.statuses[key]
        self._phase(key, status)
        phase = Phase.of(status.get("phase"))
        task = self.tasks.get(key)
        if phase is not None and phase.terminal:
            return
        if task is None or task.done():
            stop = self.stops[key] = asyncio.Event()
            self.tasks[key] = asyncio.create_task(self._supervise(key, stop), name=f"job {key}")
        elif old is not None and (old.get("metadata") or {}).get("generation") != body["metadata"].get("generation"):
            self.poke(key)  # a spec edit: decide again now (a refused spec waits for exactly this)

    def forget(self, key: str) -> None:
        stop = self.stops.pop(key, None)
        if stop is not None:
            stop.set()
        body = self.bodies.pop(key, None)
        if body is not None:
            meta = body["metadata"]
            self.by_child.pop((meta["namespace"], job_name(meta["name"])), None)
        for d in (self.statuses, self.children, self.phases, self.wakeups, self.services):
            d.pop(key, None)
        self.ledger.forget(key)
        self._hold_events()
        task = self.tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()

    def observe_child(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        key = self.by_child.get((namespace, name))
        if key is None:
            return
        known = key in self.children
        old = self.children.get(key)
        if body is None:
            self.children[key] = None
        elif not known or _rv(body) >= _rv(old):
            self.children[key] = slim_child(body)
        else:
            return  # older than what this process already holds
        if not known or self._child_differs(key, old, self.children[key]):
            self.poke(key)

    def _child_differs(self, key: str, old: JsonDict | None, new: JsonDict | None) -> bool:
        """Whether a decision would read the child differently: the echo of this process's own
        create or patch, and the Job controller marking a child suspended, change nothing, and a
        step for each would double a burst's work."""
        if old is None or new is None:
            return old is not new
        uid = str(((self.bodies.get(key) or {}).get("metadata") or {}).get("uid", ""))
        return child_state(old, uid) != child_state(new, uid)

    def observe_pod(self, body: Mapping[str, Any]) -> None:
        job = self.ledger.observe_pod(body)
        key = self.by_child.get(job) if job else None
        if key is not None:
            self.poke(key)

    def observe_held(self, body: Mapping[str, Any]) -> None:
        job = self.ledger.observe_held(body)
        key = self.by_child.get(job) if job else None
        if key is not None:
            self.poke(key)

    def _hold_events(self) -> None:
        """Events wait while a burst's first decisions do (they share the apiserver): held once the
        queue is a burst, let go once no first decision waits at all."""
        burst = self.ledger.burst
        if burst.in_burst():
            self.events.hold(True)
        elif burst.may_rescue():
            self.events.hold(False)

    def poke(self, key: str) -> None:
        ev = self.wakeups.get(key)
        if ev is not None:
            ev.set()

    def _phase(self, key: str, status: Mapping[str, Any]) -> None:
        phase = status.get("phase")
        if phase:
            self.phases[key] = str(phase)

    # -- one job's loop --------------------------------------------------------------------------

    async def _supervise(self, key: str, stop: asyncio.Event) -> None:
        attempt = 0
        wake = self.wakeups.setdefault(key, asyncio.Event())
        while not stop.is_set():
            try:
                await self.ready.wait()
                wake.clear()
                try:
                    delay = await self.step(key)
                finally:
                    self.ledger.stepped(key)
                    self._hold_events()
                attempt = 0
                if delay is None:
                    self.ledger.retired(key)
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                log.exception("reconciling %s failed; retrying in %.0fs", key, delay)
                attempt += 1
            await _sleep(stop, wake, delay)

    async def step(self, key: str) -> float | None:
        """Observe, decide, apply once. Returns the seconds until the next look (None: finished)."""
        t0 = time.perf_counter()
        body = self.bodies[key]
        meta = JobMeta.of(body)
        written = self.statuses.get(key)
        status = written[1] if written else dict(body.get("status") or {})
        parsed = observe_spec(body, status, self.settings.region_names)
        spec_ok = isinstance(parsed, TrainingJobSpec)
        child_body = await self._child(key, meta, status)
        child = child_state(child_body, meta.uid) if child_body is not None else None
        interruptible = isinstance(parsed, TrainingJobSpec) and parsed.interruption.interruptible
        n = needs(
            status,
            spec_ok,
            child,
            utcnow(),
            self.settings.replan_interval,
            self.settings.live_energy_interval,
            interruptible=interruptible,
        )
        forecasts = {}
        if n.forecasts:
            forecasts = await self.forecasts.all(
                self.settings.regions.values(), utcnow(), self.ledger.nodes.values(), fresh=n.fresh_forecasts
            )
        accounting = None
        if n.accounting and isinstance(parsed, TrainingJobSpec):
            accounting = await self._accounting(meta, parsed, status, child)
        live, live_error = await self._live_energy(meta) if n.live_energy else (None, None)
        multi_pod = isinstance(parsed, TrainingJobSpec) and parsed.parallelism > 1
        service = await self._service(key, meta) if multi_pod else None
        # From here to the ledger's update in execute() nothing awaits: the view is consistent.
        now = utcnow()
        observed = Observed(
            meta=meta,
            spec=parsed,
            status=status,
            child=child,
            now=now,
            settings=self.settings,
            ledger=self.ledger.view(key, now),
            forecasts=forecasts,
            pods=self.ledger.pods_of(meta.namespace, job_name(meta.name)),
            accounting=accounting,
            live_energy=live,
            live_energy_error=live_error,
            service=service,
        )
        actions = reconcile(observed)
        out = await self.executor.execute(meta, body, actions)
        if out.service is not None and out.service.owned:
            self.services[key] = out.service
        if out.status is not None:
            self.statuses[key] = (out.status_rv, out.status)
            self._phase(key, out.status)
        if out.child_known:
            self.children[key] = slim_child(out.child) if out.child is not None else None
        elif child_body is None:
            # Still absent (a burst's deferred job creates it later): no GET to find that out
            # again. A child the watch saw meanwhile is already known, and kept.
            self.children.setdefault(key, None)
        label = _reconcile_label(actions)
        if label:
            self.metrics.reconcile_seconds.labels(label).observe(time.perf_counter() - t0)
        if out.done:
            return None
        return out.requeue if out.requeue is not None else MAX_SLEEP

    async def _child(self, key: str, meta: JobMeta, status: Mapping[str, Any]) -> JsonDict | None:
        if key in self.children:
            return self.children[key]
        if not status.get("jobName") and not status.get("phase"):
            return None  # never created (a create that finds it anyway adopts it)
        child = await self.kube.get_or_none(job_path(meta.namespace, job_name(meta.name)))
        self.children.setdefault(key, slim_child(child) if child is not None else None)
        return self.children[key]

    async def _service(self, key: str, meta: JobMeta) -> ServiceState | None:
        known = self.services.get(key)
        if known is not None:
            return known
        found = await self.kube.get_or_none(service_path(meta.namespace, job_name(meta.name)))
        state = service_state(found, meta.uid) if found is not None else None
        if state is not None and state.owned:
            self.services[key] = state
        return state

    async def _accounting(
        self, meta: JobMeta, spec: TrainingJobSpec, status: Mapping[str, Any], child: ChildState | None
    ) -> AccountingInputs:
        now = utcnow()
        pods = await self.kube.list_pods(meta.namespace, f"job-name={job_name(meta.name)}") if child else []
        limit = (status.get("power") or {}).get("gpuPowerLimitWatts")
        watts = float(limit) if limit else self.config.planner.default_gpu_watts
        energy = total_energy(pods, spec.gpus_per_pod, watts, await self._node_agent_energy(meta, spec, pods, child))
        if status.get("segments"):
            windows = segmented_windows(status, child.completion_time if child else None, spec.regions[0], now)
        else:
            windows = accounting_windows(
                status,
                child.start_time if child else None,
                child.completion_time if child else None,
                spec.regions[0],
                now,
            )
        a, b = windows.actual, windows.baseline
        actual = await self.carbon.history_async(a.region, a.start, a.end)
        get = self.carbon.history_async if b.history else self.carbon.forecast_async
        baseline = await get(b.region, b.start, b.end)
        return AccountingInputs(energy, windows, actual, baseline)

    async def _node_agent_energy(
        self, meta: JobMeta, spec: TrainingJobSpec, pods: list[JsonDict], child: ChildState | None
    ) -> dict[str, float]:
        """The node agent's joules for pods that left no trainer report; {} without Prometheus or data."""
        missing = reportless_pods(pods, spec.gpus_per_pod)
        if not missing or self.config.prometheus_url is None:
            return {}
        now = utcnow()
        start = child.start_time if child is not None and child.start_time is not None else None
        # The whole run, plus the agent's linger after the pod ended; a day when the start is unknown.
        window = (now - start).total_seconds() + NODE_AGENT_LINGER_SECONDS if start else 86_400
        doc, error = await self._prometheus(pod_energy_query(meta.namespace, missing, int(window)))
        if doc is None:
            log.warning("node agent energy of %s/%s not read (%s); estimating", meta.namespace, meta.name, error)
            return {}
        return parse_pod_energy(doc)

    async def _live_energy(self, meta: JobMeta) -> tuple[LiveEnergy | None, str | None]:
        """The running job's energy so far from Prometheus, or why it could not be read. Best effort:
        a slow or dead Prometheus costs one 5-second timeout per poll and blocks nothing else."""
        doc, error = await self._prometheus(energy_query(meta.namespace, meta.name))
        return (parse_energy(doc) if doc is not None else None), error

    async def _prometheus(self, query: str) -> tuple[Mapping[str, Any] | None, str | None]:
        """One instant query's answer, or why there is none."""
        url = self.config.prometheus_url
        assert url is not None
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._http.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}) as resp:
                resp.raise_for_status()
                doc: Mapping[str, Any] = await resp.json()
                return doc, None
        except TimeoutError:
            return None, f"no answer from {url} within 5s"
        except (aiohttp.ClientError, ValueError) as exc:
            return None, f"{url}: {type(exc).__name__}: {exc}"[:300]

    async def shutdown(self) -> None:
        for stop in self.stops.values():
            stop.set()
        for ev in self.wakeups.values():
            ev.set()
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
            for t in late:
                t.cancel()
        await self.events.close()
        if self._http is not None:
            await self._http.close()


async def _sleep(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Until the timeout, a wake-up (an event for this job) or a stop (deletion, shutdown)."""
    if seconds <= 0:
        return
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=min(seconds, MAX_SLEEP), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
