"""Per-pod GPU energy: each GPU's energy between two polls goes to the container that held it (pure).

The GPU meters are the trainer's (NVML total-energy counter, power integration where it is missing).
A pod's series lingers after it ends, so Prometheus scrapes its final value; then it is dropped. An
agent restart starts the counters again from 0 (a counter reset, which PromQL's increase() handles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from green_trainer.meters import MeterName
from green_trainer.node_agent.holdings import Holder


@dataclass(frozen=True)
class PodGpuKey:
    holder: Holder
    job: str
    uuid: str
    meter: MeterName


class PodEnergyLedger:
    def __init__(self, linger_seconds: float) -> None:
        self._linger = linger_seconds
        self._last: dict[str, float] = {}
        self._totals: dict[PodGpuKey, float] = {}
        self._seen: dict[PodGpuKey, float] = {}

    def record(
        self,
        gpu_joules: Mapping[str, tuple[float, MeterName]],
        holders: Mapping[str, tuple[Holder, str]],
        now: float,
    ) -> None:
        """gpu_joules: UUID -> (energy since the agent started, meter); holders: UUID -> (holder, job)."""
        for uuid, (joules, meter) in gpu_joules.items():
            delta = joules - self._last.get(uuid, joules)
            self._last[uuid] = joules
            held = holders.get(uuid)
            if held is None:
                continue
            key = PodGpuKey(held[0], held[1], uuid, meter)
            self._totals[key] = self._totals.get(key, 0.0) + max(delta, 0.0)
            self._seen[key] = now
        for key, seen in list(self._seen.items()):
            if now - seen > self._linger:
                del self._seen[key], self._totals[key]

    def totals(self) -> dict[PodGpuKey, float]:
        return dict(self._totals)
