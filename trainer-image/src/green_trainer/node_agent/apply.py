"""Carries out a LimitPlan through NVML and the state file; one outcome per pod's GPU.

Clamping reuses the trainer's plan_limit. In read-only mode nothing is set and nothing is written:
the outcome says what would have been done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from green_trainer.node_agent.holdings import Holder
from green_trainer.node_agent.plan import Action, Restore, SetLimit, StateEntry
from green_trainer.node_agent.state import StateFile
from green_trainer.nvml import NvmlApi
from green_trainer.power_limit import NO_PERMISSION_REASON, LimitCode, plan_limit

log = logging.getLogger(__name__)

READ_ONLY = "ReadOnly"


@dataclass(frozen=True)
class GpuOutcome:
    """The limit of one pod's GPU: the `reason` label of greentraining_node_power_limit_applied."""

    uuid: str
    holder: Holder
    requested_watts: float
    applied_watts: float | None
    code: str
    reason: str

    @property
    def applied(self) -> bool:
        return self.code in (LimitCode.APPLIED, LimitCode.CLAMPED)


class LimitApplier:
    def __init__(self, nvml: NvmlApi, handles: Mapping[str, Any], state: StateFile | None, read_only: bool) -> None:
        if state is None and not read_only:
            raise ValueError("a state file is needed unless read-only")
        self._nvml = nvml
        self._handles = handles
        self._state = state
        self.read_only = read_only
        self.set_calls = 0

    @property
    def state(self) -> dict[str, StateEntry]:
        return self._state.entries if self._state is not None else {}

    def apply(self, actions: tuple[Action, ...]) -> list[GpuOutcome]:
        outcomes: list[GpuOutcome] = []
        for action in actions:
            if isinstance(action, SetLimit):
                outcomes.append(self._set(action))
            else:
                self._restore(action)
        return outcomes

    def _error_code(self, err: Exception) -> tuple[str, str]:
        if isinstance(err, self._nvml.NVMLError_NoPermission):
            return LimitCode.NO_PERMISSION, NO_PERMISSION_REASON
        if isinstance(err, self._nvml.NVMLError_NotSupported):
            return LimitCode.NOT_SUPPORTED, "power limits not supported on this GPU"
        return LimitCode.NVML_ERROR, f"NVML error: {err}"

    def _set(self, action: SetLimit) -> GpuOutcome:
        handle = self._handles[action.uuid]
        nvml = self._nvml

        def outcome(watts: float | None, code: str, reason: str) -> GpuOutcome:
            return GpuOutcome(action.uuid, action.holder, action.watts, watts, code, reason)

        try:
            low, high = (int(v) for v in nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle))
            plan = plan_limit(action.watts, low, high)
            current = int(nvml.nvmlDeviceGetPowerManagementLimit(handle))
        except nvml.NVMLError as err:
            return outcome(None, *self._error_code(err))
        code: str = LimitCode.APPLIED
        reason = ""
        if plan.clamped:
            code = LimitCode.CLAMPED
            reason = f"requested {action.watts:g} W; the GPU allows {low / 1000:g}-{high / 1000:g} W"
        if self.read_only or self._state is None:
            if plan.target_milliwatts != current:
                return outcome(None, READ_ONLY, f"read-only: would set {plan.target_milliwatts / 1000:g} W")
            return outcome(current / 1000, code, reason)
        entry = self._state.entries.get(action.uuid)
        fresh = entry is None
        previous = current if entry is None else entry.previous_mw
        pod = str(action.holder.pod)
        if entry is None or (entry.target_mw, entry.pod_uid) != (plan.target_milliwatts, action.pod_uid):
            self._state.put(StateEntry(action.uuid, previous, plan.target_milliwatts, pod, action.pod_uid))
        if plan.target_milliwatts != current:
            try:
                nvml.nvmlDeviceSetPowerManagementLimit(handle, plan.target_milliwatts)
                self.set_calls += 1
            except nvml.NVMLError as err:
                if fresh:
                    self._state.remove(action.uuid)  # nothing changed: nothing to restore
                code, reason = self._error_code(err)
                log.warning("GPU %s of pod %s: limit %g W not set: %s", action.uuid, pod, action.watts, reason)
                return outcome(None, code, reason)
            log.info(
                "GPU %s of pod %s: limit %g W (was %g W)%s",
                action.uuid,
                pod,
                plan.target_milliwatts / 1000,
                current / 1000,
                f"; {reason}" if reason else "",
            )
        return outcome(plan.target_milliwatts / 1000, code, reason)

    def _restore(self, action: Restore) -> None:
        if self.read_only or self._state is None:
            return
        handle = self._handles.get(action.uuid)
        entry = action.entry
        if handle is None:
            log.error("GPU %s is in the state file but NVML does not list it; keeping its entry", action.uuid)
            return
        try:
            if int(self._nvml.nvmlDeviceGetPowerManagementLimit(handle)) != entry.previous_mw:
                self._nvml.nvmlDeviceSetPowerManagementLimit(handle, entry.previous_mw)
                self.set_calls += 1
        except self._nvml.NVMLError as err:
            log.error(
                "GPU %s: could not restore %g W (%s); trying again next poll",
                action.uuid,
                entry.previous_mw / 1000,
                err,
            )
            return
        self._state.remove(action.uuid)
        log.info("GPU %s: limit restored to %g W (%s)", action.uuid, entry.previous_mw / 1000, action.why)
