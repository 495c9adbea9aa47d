"""The sampling loop: reads the meters, the training progress and the carbon intensity on a timer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from green_trainer.carbon import CarbonIntensity, emissions_grams
from green_trainer.meters import EnergyMeter, GpuMeter, MeterName, weakest
from green_trainer.progress_files import Progress, ProgressReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuSnapshot:
    index: int
    uuid: str
    model: str
    meter: MeterName
    energy_joules: float
    power_watts: float | None
    utilization_ratio: float | None
    power_limit_watts: float | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the exporter serves and the report totals, as of one sample."""

    meter: MeterName
    energy_by_meter: dict[MeterName, float]
    gpus: tuple[GpuSnapshot, ...] = ()
    power_watts: float | None = None
    progress: Progress = field(default_factory=Progress)
    carbon_intensity: float | None = None
    emissions_grams_by_meter: dict[MeterName, float] = field(default_factory=dict)
    ticks: int = 0

    @property
    def energy_joules(self) -> float:
        return sum(self.energy_by_meter.values())

    @property
    def emissions_grams(self) -> float | None:
        return sum(self.emissions_grams_by_meter.values()) if self.emissions_grams_by_meter else None

    @property
    def energy_per_sample_joules(self) -> float | None:
        return self.energy_joules / self.progress.samples if self.progress.samples else None


class Sampler:
    """Samples GPU meters when there are GPUs, else the host meter (RAPL or the estimate)."""

    def __init__(
        self,
        gpu_meters: Sequence[GpuMeter],
        host_meter: EnergyMeter | None,
        progress: ProgressReader | None,
        carbon: CarbonIntensity,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gpu_meters = list(gpu_meters)
        self._meters: list[EnergyMeter]
        if self._gpu_meters:
            self._meters = list(self._gpu_meters)
        elif host_meter is not None:
            self._meters = [host_meter]
        else:
            raise ValueError("Sampler needs GPU meters or a host meter")
        self._progress = progress
        self._carbon = carbon
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._emissions: dict[MeterName, float] = {}
        self._attributed: dict[MeterName, float] = {}
        self._snapshot = self._build(progress=Progress(), intensity=None, ticks=0)

    def _build(self, progress: Progress, intensity: float | None, ticks: int) -> Snapshot:
        energy: dict[MeterName, float] = {}
        for meter in self._meters:
            energy[meter.meter] = energy.get(meter.meter, 0.0) + meter.energy_joules
        gpus = tuple(
            GpuSnapshot(
                index=m.gpu.index,
                uuid=m.gpu.uuid,
                model=m.gpu.model,
                meter=m.meter,
                energy_joules=m.energy_joules,
                power_watts=m.power_watts,
                utilization_ratio=m.utilization_ratio,
                power_limit_watts=m.power_limit_watts,
            )
            for m in self._gpu_meters
        )
        powers = [g.power_watts for g in gpus if g.power_watts is not None]
        return Snapshot(
            meter=weakest(list(energy)),
            energy_by_meter=energy,
            gpus=gpus,
            power_watts=sum(powers) if powers else None,
            progress=progress,
            carbon_intensity=intensity,
            emissions_grams_by_meter=dict(self._emissions),
            ticks=ticks,
        )

    def tick(self) -> Snapshot:
        """Take one sample now; also called once more at the end so the totals cover the whole run."""
        now = self._clock()
        for meter in self._meters:
            meter.sample(now)
        progress = self._progress.read() if self._progress is not None else Progress()
        intensity = self._carbon.current(now)
        with self._lock:
            snapshot = self._build(progress, intensity, self._snapshot.ticks + 1)
            if intensity is not None:
                # Each new joule is charged at the intensity in force when it was measured.
                for name, joules in snapshot.energy_by_meter.items():
                    fresh = joules - self._attributed.get(name, 0.0)
                    self._attributed[name] = joules
                    self._emissions[name] = self._emissions.get(name, 0.0) + emissions_grams(fresh, intensity)
                snapshot = replace(snapshot, emissions_grams_by_meter=dict(self._emissions))
            else:
                self._attributed = dict(snapshot.energy_by_meter)
            self._snapshot = snapshot
        return snapshot

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def start(self, interval_seconds: float) -> None:
        self._thread = threading.Thread(target=self._loop, args=(interval_seconds,), name="green-sampler", daemon=True)
        self._thread.start()

    def _loop(self, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            try:
                self.tick()
            except Exception:  # a broken read must not end metering for the rest of the run
                log.exception("sampling failed; trying again next interval")

    def stop(self) -> Snapshot:
        """Stop the loop and take the final sample."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.tick()
