"""The plan's inputs, read from the annotations the user put on the pod templates. Pure.

A workload without `greentraining.io/estimated-duration` is not ours to plan (`Unmanaged`). A bad
value is `Malformed`, naming the annotation and the fix: the job then runs carbon-blind, at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from green_operator.api.manifests import ANN_POWER_LIMIT
from green_operator.api.spec import gpus_in_template, held_gpus
from green_operator.planner import PowerPolicy, PowerRequest
from green_operator.times import parse_delay, parse_duration, parse_rfc3339

from .workload import WorkloadView

ANN_DURATION = "greentraining.io/estimated-duration"
ANN_DEADLINE = "greentraining.io/deadline"
ANN_MAX_DELAY = "greentraining.io/max-delay"
ANN_POWER_POLICY = "greentraining.io/power-policy"
ANN_MAX_SLOWDOWN = "greentraining.io/max-slowdown-percent"
INPUTS = (ANN_DURATION, ANN_DEADLINE, ANN_MAX_DELAY, ANN_POWER_POLICY, ANN_MAX_SLOWDOWN, ANN_POWER_LIMIT)


@dataclass(frozen=True)
class Unmanaged:
    message: str = f"not managed by the carbon check: no {ANN_DURATION} annotation on the pod template"


@dataclass(frozen=True)
class Malformed:
    annotation: str
    problem: str
    fix: str

    @property
    def message(self) -> str:
        return f"annotation {self.annotation} {self.problem}; {self.fix}"


@dataclass(frozen=True)
class Managed:
    duration: timedelta
    deadline: datetime
    """Finish by (max-delay becomes created + max-delay + duration)."""
    power: PowerRequest
    gpus: int
    user_power_limit: bool
    """The user set the power-limit annotation: kept as it is, planned as Fixed."""

    @property
    def latest_start(self) -> datetime:
        return self.deadline - self.duration


Inputs = Managed | Unmanaged | Malformed


def _values(wl: WorkloadView) -> dict[str, str] | Malformed:
    """Each input annotation's value over all pod sets; pod sets that disagree are an error."""
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    for ps in wl.pod_sets:
        for key in INPUTS:
            value = ps.annotations.get(key)
            if value is None:
                continue
            if key in out and out[key] != value:
                return Malformed(
                    key,
                    f"is {out[key]!r} on pod set {where[key]} but {value!r} on {ps.name}",
                    "set the same value on every pod template (or on one only)",
                )
            out[key], where[key] = value, ps.name
    return out


def read_inputs(wl: WorkloadView) -> Inputs:
    values = _values(wl)
    if isinstance(values, Malformed):
        return values
    if ANN_DURATION not in values:
        return Unmanaged()
    try:
        duration = parse_duration(values[ANN_DURATION])
    except ValueError as exc:
        return Malformed(ANN_DURATION, f"is invalid: {exc}", "write the run time as a duration such as 2h or 45m")
    deadline_text, delay_text = values.get(ANN_DEADLINE), values.get(ANN_MAX_DELAY)
    if deadline_text is not None and delay_text is not None:
        return Malformed(ANN_DEADLINE, f"and {ANN_MAX_DELAY} are both set", "keep only one of them")
    if deadline_text is not None:
        try:
            deadline = parse_rfc3339(deadline_text)
        except ValueError as exc:
            return Malformed(ANN_DEADLINE, f"is invalid: {exc}", "write it in RFC 3339, e.g. 2026-12-01T09:00:00Z")
    elif delay_text is not None:
        try:
            deadline = wl.created + parse_delay(delay_text) + duration
        except ValueError as exc:
            return Malformed(ANN_MAX_DELAY, f"is invalid: {exc}", "write how long it may wait, such as 6h or 0s")
    else:
        return Malformed(
            ANN_DURATION,
            f"is set but neither {ANN_DEADLINE} nor {ANN_MAX_DELAY} is",
            f"add {ANN_DEADLINE} (RFC 3339) or {ANN_MAX_DELAY} (e.g. 6h)",
        )
    power = _power(values)
    if isinstance(power, Malformed):
        return power
    gpus = sum(held_gpus(gpus_in_template(ps.template), ps.count) for ps in wl.pod_sets) or 1
    return Managed(duration, deadline, power, gpus, ANN_POWER_LIMIT in values)


def _power(values: dict[str, str]) -> PowerRequest | Malformed:
    limit = values.get(ANN_POWER_LIMIT)
    if limit is not None:
        try:
            watts = float(limit)
        except ValueError:
            watts = 0.0
        if not (math.isfinite(watts) and watts > 0):  # "nan" and "inf" parse as floats
            return Malformed(ANN_POWER_LIMIT, f"is {limit!r}", "write the limit in watts, e.g. 250")
        return PowerRequest(PowerPolicy.FIXED, watts)
    policy_text = values.get(ANN_POWER_POLICY, PowerPolicy.AUTO.value)
    try:
        policy = PowerPolicy(policy_text)
    except ValueError:
        return Malformed(
            ANN_POWER_POLICY,
            f"is {policy_text!r}",
            f"use Auto or None (for a fixed limit set {ANN_POWER_LIMIT} instead)",
        )
    if policy is PowerPolicy.FIXED:
        return Malformed(ANN_POWER_POLICY, "is Fixed without a limit", f"set {ANN_POWER_LIMIT} to the limit in watts")
    slowdown_text = values.get(ANN_MAX_SLOWDOWN)
    if slowdown_text is None:
        return PowerRequest(policy)
    try:
        slowdown = float(slowdown_text)
    except ValueError:
        slowdown = -1.0
    if not 0 <= slowdown <= 100:
        return Malformed(ANN_MAX_SLOWDOWN, f"is {slowdown_text!r}", "write a percentage from 0 to 100, e.g. 10")
    return PowerRequest(policy, max_slowdown_percent=slowdown)
