"""A generator of realistic training workloads for the simulator.

The mix (assumptions, stated so they can be argued with):
- Arrivals: Poisson, three times denser during office hours (08-19 UTC on weekdays) than at
  night, and a third as dense on weekends: people submit when they work.
- Three classes, by share of jobs:
  - debug / short (40 %): 15 min to 2 h (log-normal, median 45 min), 1-2 GPUs, deadline 2-8 h
    after the earliest finish;
  - experiment (45 %): 2-12 h (median 5 h), 1-8 GPUs, deadline 6-24 h after the earliest finish
    ("by tomorrow morning");
  - large (15 %): 12-48 h (median 20 h), 8-32 GPUs, deadline 12-48 h after the earliest finish.
  One job in ten is urgent whatever its class: its deadline leaves only 10 % of its duration
  plus 30 minutes of slack.
- Regions: a home region drawn from the list (first ones likelier); half the jobs may run only
  at home, 30 % also in one other region, 20 % anywhere (home first).
- 30 % are marked interruptible (paused and resumed along segments with `simulate --interruptible`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .jobs_file import SimJob


@dataclass(frozen=True)
class _Class:
    name: str
    share: float
    median_minutes: float
    min_minutes: float
    max_minutes: float
    gpus: tuple[int, ...]
    slack_hours: tuple[float, float]


_CLASSES = (
    _Class("debug", 0.40, 45, 15, 120, (1, 1, 1, 2), (2, 8)),
    _Class("experiment", 0.45, 300, 120, 720, (1, 2, 4, 4, 8), (6, 24)),
    _Class("large", 0.15, 1200, 720, 2880, (8, 8, 16, 32), (12, 48)),
)


def _rate_weight(t: datetime) -> float:
    weekend = t.weekday() >= 5
    office = 8 <= t.hour < 19
    return (3.0 if office else 1.0) * (1 / 3 if weekend else 1.0)


def generate_jobs(
    regions: Sequence[str],
    start: datetime,
    days: float,
    jobs_per_day: float,
    seed: int,
) -> list[SimJob]:
    """Jobs submitted over ``days`` from ``start``, about ``jobs_per_day`` a day on average."""
    if not regions:
        raise ValueError("--regions must name at least one region")
    if days <= 0 or jobs_per_day <= 0:
        raise ValueError("--days and --jobs-per-day must be positive")
    rng = np.random.default_rng(seed)
    end = start + timedelta(days=days)
    # Thinning: candidate arrivals at the peak rate, kept with probability weight / peak.
    mean_weight = (5 * (11 * 3 + 13) + 2 * (11 * 3 + 13) / 3) / (7 * 24)
    peak_per_hour = jobs_per_day / 24 / mean_weight * 3.0
    t = start
    submits: list[datetime] = []
    while True:
        t += timedelta(hours=float(rng.exponential(1 / peak_per_hour)))
        if t >= end:
            break
        if rng.random() < _rate_weight(t) / 3.0:
            submits.append(t.replace(microsecond=0))
    home_weights = np.array([1.0 / (k + 1) for k in range(len(regions))])
    home_weights /= home_weights.sum()
    shares = np.array([c.share for c in _CLASSES])
    jobs: list[SimJob] = []
    for n, submit in enumerate(submits):
        cls = _CLASSES[int(rng.choice(len(_CLASSES), p=shares))]
        sigma = 0.5
        minutes = float(np.exp(rng.normal(math.log(cls.median_minutes), sigma)))
        minutes = round(min(max(minutes, cls.min_minutes), cls.max_minutes) / 5) * 5
        duration = timedelta(minutes=minutes)
        if rng.random() < 0.1:
            slack = duration * 0.1 + timedelta(minutes=30)
        else:
            slack = timedelta(hours=float(rng.uniform(*cls.slack_hours)))
        home = int(rng.choice(len(regions), p=home_weights))
        others = [r for k, r in enumerate(regions) if k != home]
        u = rng.random()
        if u < 0.5 or not others:
            allowed: tuple[str, ...] = (regions[home],)
        elif u < 0.8:
            allowed = (regions[home], others[int(rng.integers(len(others)))])
        else:
            allowed = (regions[home], *others)
        jobs.append(
            SimJob(
                id=f"job-{n:05d}",
                submit_time=submit,
                duration=duration,
                gpus=int(rng.choice(cls.gpus)),
                deadline=(submit + duration + slack).replace(microsecond=0),
                regions=allowed,
                interruptible=bool(rng.random() < 0.3),
            )
        )
    return jobs
