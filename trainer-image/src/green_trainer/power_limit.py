"""Apply the operator's GPU power limit through NVML, clamped to the device's range, and put it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import StrEnum

from green_trainer.nvml import Gpu, NvmlApi

log = logging.getLogger(__name__)


class LimitCode(StrEnum):
    """Why the limit is (or is not) in force: the `reason` label of greentraining_power_limit_applied."""

    APPLIED = "Applied"
    CLAMPED = "Clamped"
    NOT_REQUESTED = "NotRequested"
    NO_GPU = "NoGpu"
    NVML_UNAVAILABLE = "NvmlUnavailable"
    NO_PERMISSION = "NoPermission"
    NOT_SUPPORTED = "NotSupported"
    NVML_ERROR = "NvmlError"


NO_PERMISSION_REASON = "no permission (needs CAP_SYS_ADMIN)"


@dataclass(frozen=True)
class LimitPlan:
    target_milliwatts: int
    clamped: bool


def plan_limit(requested_watts: float, min_milliwatts: int, max_milliwatts: int) -> LimitPlan:
    """Clamp the request to the device's allowed range (NVML takes whole milliwatts)."""
    wanted = round(requested_watts * 1000)
    target = min(max(wanted, min_milliwatts), max_milliwatts)
    return LimitPlan(target_milliwatts=target, clamped=target != wanted)


@dataclass(frozen=True)
class PowerLimitOutcome:
    requested_watts: float | None
    applied_watts: float | None
    applied: bool
    code: LimitCode
    reason: str
    restored: bool | None = None


def not_applied(requested_watts: float | None, code: LimitCode, reason: str) -> PowerLimitOutcome:
    return PowerLimitOutcome(requested_watts, None, applied=False, code=code, reason=reason)


class PowerLimiter:
    """Sets one limit on every GPU of the container and remembers what to restore."""

    def __init__(self, nvml: NvmlApi, gpus: list[Gpu]) -> None:
        self._nvml = nvml
        self._gpus = gpus
        self._previous: dict[int, int] = {}
        self.outcome = not_applied(None, LimitCode.NOT_REQUESTED, "no limit requested")

    def apply(self, requested_watts: float | None) -> PowerLimitOutcome:
        self.outcome = self._apply(requested_watts)
        if self.outcome.applied:
            log.info("GPU power limit set to %.0f W (%s)", self.outcome.applied_watts, self.outcome.reason)
        elif requested_watts is not None:
            log.warning("GPU power limit of %.0f W not applied: %s", requested_watts, self.outcome.reason)
        return self.outcome

    def _failure(self, requested: float, gpu: Gpu, err: Exception) -> PowerLimitOutcome:
        if isinstance(err, self._nvml.NVMLError_NoPermission):
            return not_applied(requested, LimitCode.NO_PERMISSION, NO_PERMISSION_REASON)
        if isinstance(err, self._nvml.NVMLError_NotSupported):
            message = f"power limits not supported on GPU {gpu.index} ({gpu.model})"
            return not_applied(requested, LimitCode.NOT_SUPPORTED, message)
        return not_applied(requested, LimitCode.NVML_ERROR, f"NVML error on GPU {gpu.index}: {err}")

    def _apply(self, requested: float | None) -> PowerLimitOutcome:
        if requested is None:
            return not_applied(None, LimitCode.NOT_REQUESTED, "no limit requested")
        if not self._gpus:
            return not_applied(requested, LimitCode.NO_GPU, "no GPU visible to this container")
        targets: list[int] = []
        clamp_notes: list[str] = []
        for gpu in self._gpus:
            try:
                low, high = self._nvml.nvmlDeviceGetPowerManagementLimitConstraints(gpu.handle)
                plan = plan_limit(requested, int(low), int(high))
                current = int(self._nvml.nvmlDeviceGetPowerManagementLimit(gpu.handle))
                if plan.target_milliwatts != current:
                    self._nvml.nvmlDeviceSetPowerManagementLimit(gpu.handle, plan.target_milliwatts)
                self._previous[gpu.index] = current
            except self._nvml.NVMLError as err:
                self.restore()  # leave no GPU half-configured
                return self._failure(requested, gpu, err)
            targets.append(plan.target_milliwatts)
            if plan.clamped:
                clamp_notes.append(
                    f"GPU {gpu.index} allows {low / 1000:g}-{high / 1000:g} W; set {plan.target_milliwatts / 1000:g} W"
                )
        applied_watts = min(targets) / 1000
        if clamp_notes:
            reason = f"requested {requested:g} W is outside the allowed range: " + "; ".join(clamp_notes)
            return PowerLimitOutcome(requested, applied_watts, True, LimitCode.CLAMPED, reason)
        return PowerLimitOutcome(requested, applied_watts, True, LimitCode.APPLIED, "")

    def restore(self) -> bool:
        """Put every changed GPU back to its previous limit; True when all of them are back."""
        restored = True
        for gpu in self._gpus:
            previous = self._previous.pop(gpu.index, None)
            if previous is None:
                continue
            try:
                if int(self._nvml.nvmlDeviceGetPowerManagementLimit(gpu.handle)) != previous:
                    self._nvml.nvmlDeviceSetPowerManagementLimit(gpu.handle, previous)
            except self._nvml.NVMLError as err:
                restored = False
                log.error("could not restore GPU %d limit to %.0f W: %s", gpu.index, previous / 1000, err)
        if self.outcome.applied:
            self.outcome = replace(self.outcome, restored=restored)
        return restored
