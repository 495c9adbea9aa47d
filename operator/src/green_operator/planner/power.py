"""Power-limit options for a job: what each limit costs in time and saves in energy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .model import PowerPolicy, PowerRequest
from .power_profiles import PowerProfile

# Auto tries limits on a grid of this many steps across the device's range (5 W on an H100).
_AUTO_STEPS = 100
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class PowerOption:
    """One way to run a job: a GPU power limit with its predicted draw and slowdown."""

    limit_watts: float | None
    """None leaves the GPU at its default limit."""
    watts: float
    """Predicted average draw per GPU."""
    slowdown: float
    """Run time relative to the job's estimated duration: the power limit's slowdown times, in a
    region with a slower GPU model than the job's reference, that model's speed ratio."""
    limit_slowdown: float | None = None
    """The power limit's own share of ``slowdown`` when the GPU model also stretches it (for reasons)."""

    @property
    def power_slowdown(self) -> float:
        return self.slowdown if self.limit_slowdown is None else self.limit_slowdown

    @property
    def energy_per_work(self) -> float:
        """Watts x slowdown: proportional to the job's energy."""
        return self.watts * self.slowdown


def default_option(profile: PowerProfile | None, default_gpu_watts: float) -> PowerOption:
    watts = profile.default_watts if profile is not None else default_gpu_watts
    return PowerOption(None, watts, 1.0)


def fixed_option(profile: PowerProfile | None, limit_watts: float, default_gpu_watts: float) -> PowerOption:
    """A user's fixed limit, clamped as the device would; without a profile the draw is taken as
    ``min(limit, default)`` and the slowdown as unknown (1.0)."""
    if profile is None:
        return PowerOption(limit_watts, min(limit_watts, default_gpu_watts), 1.0)
    limit = profile.clamp(limit_watts)
    return PowerOption(limit, profile.average_watts(limit), profile.slowdown(limit))


def power_options(profile: PowerProfile | None, request: PowerRequest, default_gpu_watts: float) -> list[PowerOption]:
    """Every limit worth considering for this request, fastest first.

    None and Fixed have exactly one. Auto has the default plus each limit on a grid whose predicted
    slowdown stays within ``max_slowdown_percent``, keeping only limits that save energy over every
    faster one (a slower limit that also uses more energy is never worth it).
    """
    if request.policy is PowerPolicy.FIXED:
        if request.watts is None:
            raise ValueError("power.watts is required when power.policy is Fixed: set gpuPowerLimitWatts")
        return [fixed_option(profile, request.watts, default_gpu_watts)]
    default = default_option(profile, default_gpu_watts)
    if request.policy is PowerPolicy.NONE or profile is None:
        return [default]
    if request.max_slowdown_percent < 0:
        raise ValueError("power.max_slowdown_percent must be >= 0")
    max_slowdown = 1.0 + request.max_slowdown_percent / 100.0 + _EPS
    options = [default]
    best_energy = default.energy_per_work
    step = max(1.0, round((profile.max_limit_watts - profile.min_limit_watts) / _AUTO_STEPS))
    limit = float(math.floor(profile.binding_limit_watts))
    if limit >= profile.binding_limit_watts:
        limit -= step
    while limit >= profile.min_limit_watts:
        option = PowerOption(limit, profile.average_watts(limit), profile.slowdown(limit))
        if option.slowdown > max_slowdown:
            break
        if option.energy_per_work < best_energy * (1 - _EPS):
            options.append(option)
            best_energy = option.energy_per_work
        limit -= step
    return options


def choose_power_limit(profile: PowerProfile | None, request: PowerRequest, default_gpu_watts: float) -> PowerOption:
    """The option with the least energy, ignoring when it runs: what Auto picks under a flat grid
    intensity. The planner itself weighs each option against the forecast of its own run window."""
    return min(power_options(profile, request, default_gpu_watts), key=lambda o: o.energy_per_work)
