"""Energy meters. Each figure carries the name of the meter that produced it."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Protocol

from green_trainer.nvml import Gpu, NvmlApi
from green_trainer.rapl import RaplCounter

log = logging.getLogger(__name__)


class MeterName(StrEnum):
    NVML = "nvml"  # the GPU's own total-energy counter (mJ, Volta and newer)
    NVML_POWER_INTEGRATION = "nvml_power_integration"  # NVML power samples integrated over time
    RAPL = "rapl"  # CPU package + DRAM counters
    ESTIMATE = "estimate"  # a configured wattage times wall time: not a measurement


# The weakest meter in a sum names the sum.
_STRENGTH = [MeterName.NVML, MeterName.NVML_POWER_INTEGRATION, MeterName.RAPL, MeterName.ESTIMATE]


def weakest(meters: list[MeterName]) -> MeterName:
    return max(meters, key=_STRENGTH.index) if meters else MeterName.ESTIMATE


def trapezoid_joules(previous_watts: float, current_watts: float, seconds: float) -> float:
    return (previous_watts + current_watts) / 2 * max(seconds, 0.0)


class EnergyMeter(Protocol):
    meter: MeterName

    @property
    def energy_joules(self) -> float: ...

    def sample(self, now: float) -> None: ...


class GpuMeter:
    """One GPU: the NVML energy counter where the GPU has one, else integrated power samples."""

    def __init__(self, nvml: NvmlApi, gpu: Gpu, now: float) -> None:
        self._nvml = nvml
        self.gpu = gpu
        self._start_mj: int | None = None
        self._unsupported: set[str] = set()
        try:
            self._start_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
            self.meter = MeterName.NVML
        except nvml.NVMLError as err:
            log.info("GPU %d has no usable energy counter (%s): integrating power samples", gpu.index, err)
            self.meter = MeterName.NVML_POWER_INTEGRATION
        self._energy_joules = 0.0
        self.power_watts: float | None = None
        self.utilization_ratio: float | None = None
        self.power_limit_watts: float | None = None
        self._last_time = now
        self._last_good_watts = self._read_power()
        self._read_limit()

    @property
    def energy_joules(self) -> float:
        return self._energy_joules

    def _call(self, what: str, fn: Any) -> Any:
        """One NVML read; None (logged once per kind) when it fails, so one bad read costs no sample."""
        if what in self._unsupported:
            return None
        try:
            return fn(self.gpu.handle)
        except self._nvml.NVMLError as err:
            if isinstance(err, self._nvml.NVMLError_NotSupported):
                self._unsupported.add(what)
            log.debug("GPU %d: reading %s failed: %s", self.gpu.index, what, err)
            return None

    def _read_power(self) -> float | None:
        milliwatts = self._call("power", self._nvml.nvmlDeviceGetPowerUsage)
        self.power_watts = None if milliwatts is None else milliwatts / 1000
        return self.power_watts

    def _read_limit(self) -> None:
        milliwatts = self._call("limit", self._nvml.nvmlDeviceGetPowerManagementLimit)
        self.power_limit_watts = None if milliwatts is None else milliwatts / 1000

    def sample(self, now: float) -> None:
        current = self._read_power()
        if self._start_mj is not None:
            counter = self._call("energy", self._nvml.nvmlDeviceGetTotalEnergyConsumption)
            if counter is not None:
                self._energy_joules = (int(counter) - self._start_mj) / 1000
        elif current is not None:
            # Integrate from the last good sample, so a failed read costs resolution, not energy.
            if self._last_good_watts is not None:
                self._energy_joules += trapezoid_joules(self._last_good_watts, current, now - self._last_time)
            self._last_good_watts = current
            self._last_time = now
        rates = self._call("utilization", self._nvml.nvmlDeviceGetUtilizationRates)
        self.utilization_ratio = None if rates is None else float(rates.gpu) / 100
        self._read_limit()


class RaplMeter:
    meter = MeterName.RAPL

    def __init__(self, counter: RaplCounter) -> None:
        self._counter = counter

    @property
    def energy_joules(self) -> float:
        return self._counter.joules

    def sample(self, now: float) -> None:
        self._counter.sample()


class EstimateMeter:
    """A configured wattage per device times wall time: labelled `estimate`, never passed off as measured."""

    meter = MeterName.ESTIMATE

    def __init__(self, watts_per_device: float, devices: int, now: float) -> None:
        self.watts = watts_per_device * max(devices, 1)
        self.devices = max(devices, 1)
        self._start = now
        self._energy_joules = 0.0

    @property
    def energy_joules(self) -> float:
        return self._energy_joules

    def sample(self, now: float) -> None:
        self._energy_joules = self.watts * max(now - self._start, 0.0)
