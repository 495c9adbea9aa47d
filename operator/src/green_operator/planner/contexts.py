"""Jobs in slot units for one planning call: where each may run, with which power options, from
which slot and until which deadline."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from .grid import EPS, SlotGrid, require_utc
from .model import JobRequest, PowerRequest
from .placement import JobContext, RegionGroup
from .power import PowerOption, power_options
from .power_profiles import PowerProfile, power_profile


class Contexts:
    """Builds the ``JobContext`` of each job; power profiles and options per GPU model are cached
    across planning calls (the operator makes one per decision, with the same few models)."""

    def __init__(
        self, grid: SlotGrid, now: datetime, default_gpu_watts: float, reference_gpu_model: str | None = None
    ) -> None:
        self.grid = grid
        self.now = now
        self.default_gpu_watts = default_gpu_watts
        self.reference_gpu_model = reference_gpu_model

    def build(self, jobs: Sequence[JobRequest]) -> list[JobContext]:
        return [self.context(i, job) for i, job in enumerate(jobs)]

    @staticmethod
    def profile(model: str) -> PowerProfile | None:
        return _profile(model)

    def options(self, model: str, request: PowerRequest) -> tuple[PowerOption, ...]:
        return _options(model, request, self.default_gpu_watts, self.reference_gpu_model)

    def speed_ratio(self, model: str) -> float:
        """How much longer a job runs on ``model`` than on the reference model (1.0 when either is unknown)."""
        return _speed_ratio(model, self.reference_gpu_model)

    def context(self, index: int, job: JobRequest) -> JobContext:
        grid = self.grid
        names = job.regions or tuple(grid.names)
        unknown = [r for r in names if r not in grid.row]
        if unknown:
            raise ValueError(
                f"job {job.key!r}: regions {unknown} are not among the configured regions {grid.names}; "
                "drop them from spec.placement.regions or configure them"
            )
        by_model: dict[str, list[tuple[int, int]]] = {}
        for rank, name in enumerate(dict.fromkeys(names)):
            row = grid.row[name]
            by_model.setdefault(grid.gpu_models[row], []).append((row, rank))
        duration = job.duration / grid.slot
        groups = tuple(
            RegionGroup(
                rows=np.array([r for r, _ in pairs], dtype=np.int64),
                ranks=np.array([k for _, k in pairs], dtype=np.int64),
                options=_distinct_occupancy(self.options(model, job.power), duration),
            )
            for model, pairs in by_model.items()
        )
        earliest = max(job.earliest_start, self.now)
        pos = grid.to_slots(earliest)
        s0 = max(math.floor(pos + EPS), 0)
        offset = max(pos - s0, 0.0) if pos - s0 > EPS else 0.0
        cap = max(int(grid.capacity[grid.row[n]]) for n in names)
        return JobContext(
            index=index,
            gpus=job.gpus,
            earliest_time=earliest,
            s0=s0,
            offset=offset,
            deadline=grid.to_slots(job.deadline),
            duration=duration,
            groups=groups,
            max_region_capacity=cap,
        )


@functools.lru_cache(maxsize=64)
def _profile(model: str) -> PowerProfile | None:
    return power_profile(model)


@functools.lru_cache(maxsize=64)
def _speed_ratio(model: str, reference_model: str | None) -> float:
    reference = _profile(reference_model) if reference_model else None
    profile = _profile(model)
    if reference is None or profile is None:
        return 1.0
    return reference.relative_speed / profile.relative_speed


@functools.lru_cache(maxsize=256)
def _options(
    model: str, request: PowerRequest, default_gpu_watts: float, reference_model: str | None
) -> tuple[PowerOption, ...]:
    options = power_options(_profile(model), request, default_gpu_watts)
    stretch = _speed_ratio(model, reference_model)
    if stretch != 1.0:
        options = [replace(o, slowdown=o.slowdown * stretch, limit_slowdown=o.slowdown) for o in options]
    return tuple(options)


def _distinct_occupancy(options: tuple[PowerOption, ...], duration: float) -> tuple[PowerOption, ...]:
    """The default plus, per number of occupied slots, the option with the least energy.

    Options that occupy the same slots differ only in the last partial slot, where the one with
    less energy wins in all but contrived forecasts; pruning them keeps Auto about as fast as None.
    """
    if len(options) <= 2:
        return options
    kept: dict[int, PowerOption] = {}
    for opt in options[1:]:  # energy falls along the list, so the last one per count wins
        kept[math.ceil(duration * opt.slowdown - EPS)] = opt
    return (options[0], *kept.values())


def validate(job: JobRequest) -> None:
    if not job.key:
        raise ValueError("JobRequest.key must not be empty")
    if job.gpus < 1:
        raise ValueError(f"job {job.key!r}: gpus must be >= 1, got {job.gpus}")
    if job.duration <= timedelta(0):
        raise ValueError(f"job {job.key!r}: duration (estimatedDuration) must be positive")
    require_utc(job.earliest_start, f"job {job.key!r}: earliest_start")
    require_utc(job.deadline, f"job {job.key!r}: deadline")
