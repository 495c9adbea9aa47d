"""One poll of the node agent: PodResources -> holdings -> limits -> meters -> the metrics' view."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from green_trainer.meters import GpuMeter, MeterName
from green_trainer.node_agent.apply import GpuOutcome, LimitApplier
from green_trainer.node_agent.energy import PodEnergyLedger
from green_trainer.node_agent.holdings import Holder, Holdings, PodKey, gpu_holdings
from green_trainer.node_agent.metrics import AgentView, GpuView
from green_trainer.node_agent.plan import plan_limits
from green_trainer.node_agent.podresources import ContainerDevices
from green_trainer.node_agent.pods import PodInfo
from green_trainer.nvml import Gpu, NvmlApi

log = logging.getLogger(__name__)


class Lister(Protocol):
    def list(self) -> list[ContainerDevices]: ...


class PodSource(Protocol):
    def snapshot(self) -> Mapping[PodKey, PodInfo] | None: ...


class NodeAgent:
    def __init__(
        self,
        nvml: NvmlApi,
        gpus: list[Gpu],
        lister: Lister,
        pods: PodSource,
        applier: LimitApplier,
        hostname: str,
        linger_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gpus = gpus
        self._lister = lister
        self._pods = pods
        self._applier = applier
        self._hostname = hostname
        self._clock = clock
        self._meters = [GpuMeter(nvml, gpu, clock()) for gpu in gpus]
        self._ledger = PodEnergyLedger(linger_seconds)
        self._holdings = Holdings({}, ())
        self._outcomes: tuple[GpuOutcome, ...] = ()
        self._bad_seen: set[tuple[str, str]] = set()
        self._bad: dict[tuple[str, str, str], int] = {}
        self._jobs: dict[tuple[str, str], str] = {}
        self._polls = {"ok": 0, "error": 0}
        self._lock = threading.Lock()
        self._view = AgentView(hostname, applier.read_only)

    def tick(self) -> AgentView:
        try:
            rows = self._lister.list()
        except Exception as err:  # the kubelet restarting: keep the last holdings, decide nothing new
            self._polls["error"] += 1
            log.warning("PodResources List failed (%s); limits unchanged this poll", err)
        else:
            self._polls["ok"] += 1
            self._decide(rows)
        now = self._clock()
        for meter in self._meters:
            meter.sample(now)
        pods = self._pods.snapshot() or {}
        holders: dict[str, tuple[Holder, str]] = {}
        for uuid, holder in self._holdings.exclusive.items():
            info = pods.get(holder.pod)
            if info is not None and not info.terminal:
                holders[uuid] = (holder, info.job)
        self._ledger.record({m.gpu.uuid: (m.energy_joules, m.meter) for m in self._meters}, holders, now)
        view = AgentView(
            hostname=self._hostname,
            read_only=self._applier.read_only,
            gpus=tuple(
                GpuView(
                    m.gpu.index,
                    m.gpu.uuid,
                    m.gpu.model,
                    MeterName(m.meter),
                    m.energy_joules,
                    m.power_watts,
                    m.power_limit_watts,
                )
                for m in self._meters
            ),
            pod_energy=self._ledger.totals(),
            outcomes=self._outcomes,
            refused=self._holdings.refused,
            bad_annotations=dict(self._bad),
            polls=dict(self._polls),
            jobs=dict(self._jobs),
        )
        with self._lock:
            self._view = view
        return view

    def _decide(self, rows: list[ContainerDevices]) -> None:
        holdings = gpu_holdings(rows, [g.uuid for g in self._gpus])
        for refused in holdings.refused:
            if refused not in self._holdings.refused:
                log.warning("pod %s: %s", refused.holder.pod, refused.message)
        self._holdings = holdings
        pods = self._pods.snapshot()
        plan = plan_limits(holdings, pods, self._applier.state)
        for bad in plan.bad:
            if (bad.pod_uid, bad.value) not in self._bad_seen:
                self._bad_seen.add((bad.pod_uid, bad.value))
                info = (pods or {}).get(bad.pod)
                key = (bad.pod.namespace, bad.pod.name, info.job if info else "")
                self._bad[key] = self._bad.get(key, 0) + 1
                log.error("pod %s: %s; no limit set", bad.pod, bad.message)
        self._outcomes = tuple(self._applier.apply(plan.actions))
        self._jobs = {(k.namespace, k.name): v.job for k, v in (pods or {}).items()}

    def view(self) -> AgentView:
        with self._lock:
            return self._view
