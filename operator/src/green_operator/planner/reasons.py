"""One plain sentence per decision, for users and Kubernetes Events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from green_operator.times import format_minutes

from .model import PowerPolicy
from .power import PowerOption


class Risk(Enum):
    NONE = "none"
    TOO_SHORT = "too_short"
    """Even starting at once, the job cannot finish by its deadline."""
    NO_CAPACITY = "no_capacity"
    """It could, but no allowed region has the GPUs free before its latest start."""
    TOO_BIG = "too_big"
    """It needs more GPUs than any allowed region has."""


def format_time(when: datetime, now: datetime) -> str:
    if abs(when - now) < timedelta(hours=20):
        return when.strftime("%H:%M UTC")
    return when.strftime("%b %d %H:%M UTC")


@dataclass(frozen=True)
class ReasonInputs:
    now: datetime
    earliest: datetime
    region: str
    start: datetime
    intensity: float
    baseline_region: str
    baseline_start: datetime
    baseline_intensity: float
    risk: Risk
    kept_previous: bool
    hysteresis_fraction: float
    duration: timedelta
    deadline: datetime
    latest_start: datetime
    gpus: int
    regions: tuple[str, ...]
    max_region_capacity: int
    policy: PowerPolicy
    option: PowerOption
    lowest_energy_option: PowerOption
    default_option: PowerOption
    has_profile: bool
    gpu_model: str


def _when(start: datetime, now: datetime) -> str:
    return "now" if start - now < timedelta(seconds=1) else f"at {format_time(start, now)}"


def _power_clause(r: ReasonInputs) -> str:
    opt = r.option
    if r.policy is PowerPolicy.NONE:
        return ""
    if r.policy is PowerPolicy.FIXED:
        return f"; GPU limit {opt.limit_watts:.0f} W as requested"
    if not r.has_profile:
        return f"; default GPU limit kept (no power profile for GPU model {r.gpu_model!r})"
    if opt.limit_watts is None:
        if r.lowest_energy_option.limit_watts is None:
            return "; default GPU limit kept (no lower limit saves energy within the allowed slowdown)"
        return "; default GPU limit kept: a lower limit would run into dirtier hours or past the deadline"
    saving = 1.0 - opt.energy_per_work / r.default_option.energy_per_work
    more_time = opt.power_slowdown - 1
    clause = f"; GPU limit {opt.limit_watts:.0f} W trades {more_time:.0%} more time for {saving:.0%} less energy"
    if r.lowest_energy_option.energy_per_work < opt.energy_per_work * (1 - 1e-9):
        clause += " (a lower limit would run into dirtier hours or past the deadline)"
    return clause


def build_reason(r: ReasonInputs) -> str:
    return _sentence(r) + _power_clause(r)


def _sentence(r: ReasonInputs) -> str:
    where = r.region
    if r.risk is Risk.TOO_BIG:
        return (
            f"Cannot run: needs {r.gpus} GPUs but the allowed regions have at most {r.max_region_capacity}; "
            f"placed {_when(r.start, r.now)} in {where} until capacity grows"
        )
    if r.risk is Risk.TOO_SHORT:
        remain = max(r.deadline - r.earliest, timedelta(0))
        tail = "" if r.start - r.earliest < timedelta(seconds=1) else ", the earliest free slot"
        return (
            f"Deadline at risk: needs {format_minutes(r.duration)} but only {format_minutes(remain)} "
            f"remain; starting {_when(r.start, r.now)} in {where}{tail}"
        )
    if r.risk is Risk.NO_CAPACITY:
        return (
            f"Deadline at risk: no room for {r.gpus} GPUs in {', '.join(r.regions)} before the latest "
            f"start {format_time(r.latest_start, r.now)}; starting {_when(r.start, r.now)} in {where}, "
            "the earliest free slot"
        )
    forecast = f"{r.intensity:.0f} gCO2/kWh"
    if r.kept_previous:
        return (
            f"Keeping the planned start {_when(r.start, r.now)} in {where} (forecast {forecast}): "
            f"re-planning would save less than {r.hysteresis_fraction:.0%}"
        )
    base_is_now = r.baseline_start - r.earliest < timedelta(seconds=1)
    if base_is_now:
        base = "now" if r.baseline_region == where else f"now in {r.baseline_region}"
    else:
        base = f"{_when(r.baseline_start, r.now)} in {r.baseline_region}"
    if r.start - r.earliest < timedelta(seconds=1):
        start_words = f"Starting {_when(r.start, r.now)}"
        if r.baseline_region == where and base_is_now:
            return f"{start_words} in {where}: no cleaner window before the deadline (forecast {forecast})"
        return f"{start_words} in {where}: forecast {forecast} vs {r.baseline_intensity:.0f} {base}"
    wait = r.start - r.earliest
    return (
        f"Deferred {format_minutes(wait)} to {format_time(r.start, r.now)} in {where}: "
        f"forecast {forecast} vs {r.baseline_intensity:.0f} {base}"
    )
