"""Per-GPU-model curves of training throughput and average power versus the power limit.

What is measured and what is modelled, honestly:

- Limits and ratings come from the vendors' data sheets: H100 SXM5 700 W, A100 SXM4 400 W,
  L4 72 W maximum power (NVIDIA H100, A100 and L4 Tensor Core GPU data sheets).
- The H100 limit range 200-700 W and its idle draw of about 75 W were measured by this team on
  a lent H100 SXM (driver 580, NVML). The A100 (100 W) and L4 (40 W) minimum limits are the
  values NVML usually reports for those boards; they are assumptions until measured here.
- The *shape* of each curve is a model, not a measurement: within the DVFS range the board's
  average draw is ``static + dynamic * u**alpha`` at relative clock ``u``, and a step's time is
  ``(1 - beta) / u + beta`` (the fraction ``beta`` — memory, communication, input pipeline — does
  not speed up with the clock). A limit below the unconstrained draw pins the draw at the limit;
  the clock follows. ``alpha = 2.5`` sits between the ``f**3`` of voltage-scaled dynamic power
  and the ``f**2`` seen near the voltage floor; ``beta = 0.3`` is a training mix.
- The parameters were chosen so the curves agree with published sweeps: McDonald et al.,
  "Great Power, Great Responsibility" (Findings of NAACL 2022, arXiv:2205.09646) report about
  14-15 % less energy for transformer training at a 150 W cap on 250 W V100s with a modest
  increase in time; Zeus (You, Chung, Chowdhury, NSDI'23) shows energy versus power limit as a
  convex curve whose minimum lies well below the maximum limit; the Brookhaven H100 study
  (arXiv:2506.14551) finds compute-heavy training at about 76 % of the node's rated power, which
  is why the unconstrained draws below sit under TDP. These curves give, for example, H100 at
  500 W: about 10 % slower for about 16 % less energy.

The planner only uses these curves to *choose* a limit; the trainer measures the energy actually
used (NVML) and accounting uses the measurement. Replace a model with measured points by
building a :class:`PowerProfile` from them.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProfilePoint:
    limit_watts: float
    throughput: float
    """Training throughput relative to the default (maximum) limit, in (0, 1]."""
    average_watts: float
    """Average board draw while training under this limit."""


@dataclass(frozen=True)
class PowerProfile:
    """Throughput and average power of one GPU model as functions of its power limit."""

    model: str
    max_limit_watts: float
    """The default limit (TDP)."""
    min_limit_watts: float
    idle_watts: float
    points: tuple[ProfilePoint, ...]
    """Sorted by limit, from ``min_limit_watts`` to ``max_limit_watts``; linear in between."""
    source: str
    relative_speed: float = 1.0
    """Training throughput at the default limit relative to an H100 SXM: the ratio of the data
    sheets' dense BF16 tensor throughput (H100 SXM 989, A100 SXM 312, L4 121 TFLOPS). A first-order
    figure: memory-bound models see other ratios. The planner stretches a job's estimated duration
    (given for its reference GPU model) by it in regions with other GPUs."""

    def __post_init__(self) -> None:
        limits = [p.limit_watts for p in self.points]
        if len(limits) < 2 or any(b <= a for a, b in itertools.pairwise(limits)):
            raise ValueError(f"profile {self.model!r}: points must be at least two, sorted by limit")
        if limits[0] != self.min_limit_watts or limits[-1] != self.max_limit_watts:
            raise ValueError(f"profile {self.model!r}: points must span min_limit_watts..max_limit_watts")

    def clamp(self, limit_watts: float) -> float:
        """The limit the device would accept (the trainer clamps the same way)."""
        return min(max(limit_watts, self.min_limit_watts), self.max_limit_watts)

    def _interp(self, limit_watts: float, attr: str) -> float:
        x = self.clamp(limit_watts)
        limits = [p.limit_watts for p in self.points]
        i = bisect.bisect_right(limits, x) - 1
        if i >= len(self.points) - 1:
            return float(getattr(self.points[-1], attr))
        a, b = self.points[i], self.points[i + 1]
        t = (x - a.limit_watts) / (b.limit_watts - a.limit_watts)
        return float(getattr(a, attr)) * (1 - t) + float(getattr(b, attr)) * t

    def throughput(self, limit_watts: float) -> float:
        return self._interp(limit_watts, "throughput")

    def average_watts(self, limit_watts: float) -> float:
        return self._interp(limit_watts, "average_watts")

    def slowdown(self, limit_watts: float) -> float:
        """Run time relative to the default limit (1.10 = 10 % slower)."""
        return 1.0 / self.throughput(limit_watts)

    @property
    def default_watts(self) -> float:
        """Average draw at the default limit."""
        return self.points[-1].average_watts

    def energy_ratio(self, limit_watts: float) -> float:
        """Energy for the same work relative to the default limit (0.85 = 15 % less)."""
        return self.average_watts(limit_watts) * self.slowdown(limit_watts) / self.default_watts

    @property
    def binding_limit_watts(self) -> float:
        """Limits at or above this do not slow the GPU down (it never draws more)."""
        return self.default_watts


@dataclass(frozen=True)
class _DvfsModel:
    """The curve model described in the module docstring."""

    static_watts: float
    unconstrained_watts: float
    alpha: float = 2.5
    beta: float = 0.3

    def point(self, limit: float) -> ProfilePoint:
        if limit >= self.unconstrained_watts:
            return ProfilePoint(limit, 1.0, self.unconstrained_watts)
        dynamic = self.unconstrained_watts - self.static_watts
        u = max((limit - self.static_watts) / dynamic, 1e-6) ** (1.0 / self.alpha)
        step_time = (1.0 - self.beta) / u + self.beta
        return ProfilePoint(limit, 1.0 / step_time, limit)


def _modelled(
    model: str,
    *,
    max_limit: float,
    min_limit: float,
    idle: float,
    dvfs: _DvfsModel,
    source: str,
    relative_speed: float,
    points: int = 41,
) -> PowerProfile:
    step = (max_limit - min_limit) / (points - 1)
    limits = [min_limit + i * step for i in range(points - 1)] + [max_limit]
    return PowerProfile(
        model=model,
        max_limit_watts=max_limit,
        min_limit_watts=min_limit,
        idle_watts=idle,
        points=tuple(dvfs.point(x) for x in limits),
        source=source,
        relative_speed=relative_speed,
    )


H100_SXM = _modelled(
    "H100-SXM",
    max_limit=700.0,
    min_limit=200.0,
    idle=75.0,
    dvfs=_DvfsModel(static_watts=110.0, unconstrained_watts=650.0),
    relative_speed=1.0,
    source=(
        "Limits 200-700 W and idle 75 W measured on an H100 SXM (driver 580); 700 W from the "
        "NVIDIA H100 data sheet; curve modelled (DVFS model, see planner/power_profiles.py), "
        "static 110 W and unconstrained training draw 650 W assumed"
    ),
)

A100_SXM = _modelled(
    "A100-SXM",
    max_limit=400.0,
    min_limit=100.0,
    idle=55.0,
    dvfs=_DvfsModel(static_watts=70.0, unconstrained_watts=370.0),
    relative_speed=312.0 / 989.0,
    source=(
        "400 W from the NVIDIA A100 data sheet; 100 W minimum limit as NVML usually reports it "
        "(assumed); curve modelled (DVFS model), static 70 W and unconstrained draw 370 W assumed"
    ),
)

L4 = _modelled(
    "L4",
    max_limit=72.0,
    min_limit=40.0,
    idle=16.0,
    dvfs=_DvfsModel(static_watts=18.0, unconstrained_watts=72.0),
    relative_speed=121.0 / 989.0,
    source=(
        "72 W from the NVIDIA L4 data sheet (the board runs at its limit under training load); "
        "40 W minimum limit and 16 W idle assumed; curve modelled (DVFS model), static 18 W assumed"
    ),
)

PROFILES: dict[str, PowerProfile] = {p.model: p for p in (H100_SXM, A100_SXM, L4)}

# Names as NVML, node labels (nvidia.com/gpu.product) or users write them. PCIe and NVL boards have
# other power envelopes; they get no profile rather than a wrong one.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"H100(?!.*(PCIE|NVL))"), "H100-SXM"),
    (re.compile(r"A100(?!.*PCIE)"), "A100-SXM"),
    (re.compile(r"(^|[^A-Z0-9])L4($|[^0-9A-Z])"), "L4"),
)


def power_profile(gpu_model: str) -> PowerProfile | None:
    """The profile for a GPU model name such as "NVIDIA H100 80GB HBM3", "NVIDIA-A100-SXM4-40GB" or
    "L4"; None when the model is unknown (the planner then leaves the default limit)."""
    name = gpu_model.upper().replace("_", "-")
    for pattern, key in _PATTERNS:
        if pattern.search(name):
            return PROFILES[key]
    return None
