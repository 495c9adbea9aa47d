"""Inputs and outputs of the planner. Pure data: no Kubernetes, no HTTP, no clocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PowerPolicy(StrEnum):
    NONE = "None"
    FIXED = "Fixed"
    AUTO = "Auto"


@dataclass(frozen=True)
class PowerRequest:
    policy: PowerPolicy = PowerPolicy.AUTO
    watts: float | None = None
    """Requested limit for Fixed."""
    max_slowdown_percent: float = 10.0
    """Upper bound on predicted slowdown for Auto."""


@dataclass(frozen=True)
class JobRequest:
    """One job to place. ``deadline`` is when it must have finished; it may start from
    ``earliest_start``; its latest start is ``deadline - duration`` (before any power slowdown)."""

    key: str
    gpus: int
    duration: timedelta
    earliest_start: datetime
    deadline: datetime
    regions: tuple[str, ...]
    """Allowed regions in the user's order of preference; the baseline takes the first with room."""
    power: PowerRequest = PowerRequest()
    previous: Decision | None = None
    """The plan this job had before (re-planning): used for hysteresis so plans do not flap."""

    @property
    def latest_start(self) -> datetime:
        return self.deadline - self.duration


@dataclass(frozen=True)
class RegionForecast:
    """A region as the planner sees it: capacity, GPU model and intensity per slot from ``start``."""

    region: str
    capacity_gpus: int
    gpu_model: str
    start: datetime
    intensity: Sequence[float]
    """gCO2eq/kWh per slot; slot i covers [start + i*slot, start + (i+1)*slot)."""
    extrapolated_from: int | None = None
    """Values from this index on are extrapolated past the forecast (``planner.extrapolate``);
    None: all of them are forecast."""


@dataclass(frozen=True)
class Reservation:
    """GPUs already committed in a region over [start, end): running jobs and plans kept fixed."""

    region: str
    start: datetime
    end: datetime
    gpus: int


@dataclass(frozen=True)
class PlannerSettings:
    slot: timedelta = timedelta(minutes=15)
    horizon: timedelta = timedelta(hours=48)
    default_gpu_watts: float = 300.0
    """Average draw per GPU at its default limit when no profile is known for the model."""
    hysteresis_fraction: float = 0.05
    """A re-plan moves a job only when it cuts its expected emissions by more than this fraction."""
    reserve_fraction: float = 0.2
    """Share of each region's GPUs kept free for jobs that cannot wait. A job takes reserved GPUs
    only to meet its deadline, to start at once in its preferred region (what a carbon-blind
    scheduler would do), or in slots nothing else uses. Without it, jobs that could wait fill the
    clean windows to the brim and a later job with a tight deadline finds no room. 0 turns it off."""
    reference_gpu_model: str | None = None
    """The GPU model jobs' estimated durations are given for. When set, a region with a slower (or
    faster) known model stretches (or shortens) the duration by the models' relative speed, so
    energy, occupancy and deadlines follow the hardware. None: durations hold everywhere."""
    extrapolation: timedelta = timedelta(0)
    """How far past ``horizon`` plans may look, on intensity extrapolated from the region's recent
    history and the forecast (``planner.extrapolate``; the caller extends the forecasts). 0: plans
    start within the horizon, and beyond it a run's tail is priced at the forecast's mean."""
    reserve_ramp: timedelta = timedelta(hours=4)
    """The reserve grows from nothing now to its full share this far ahead: the next minutes are
    better used than held for arrivals that are unlikely to come before them."""


@dataclass(frozen=True)
class Decision:
    key: str
    region: str
    start: datetime
    power_limit_watts: float | None
    """None means leave the GPU at its default limit."""
    expected_duration: timedelta
    """Estimated duration stretched by the predicted slowdown of the chosen power limit."""
    expected_grams: float
    forecast_intensity: float
    """Mean gCO2eq/kWh over the planned run window."""
    baseline_region: str
    baseline_start: datetime
    baseline_grams: float
    baseline_intensity: float
    """Mean gCO2eq/kWh over the carbon-blind baseline's run window ("running now")."""
    deadline_at_risk: bool
    reason: str
    """One plain sentence, e.g. "Deferred 3h10m to 02:00 UTC in europe-north1: forecast 48 vs 310 now"."""
    extrapolated: timedelta = timedelta(0)
    """How much of the planned run lies past the forecast, on extrapolated intensity."""

    @property
    def end(self) -> datetime:
        return self.start + self.expected_duration
