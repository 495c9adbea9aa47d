"""Segment planning for interruptible jobs: the cleanest slots before the deadline, in segments.

Pure: one job, forecasts, the GPUs others hold, a clock. The operator, the simulator and the joint
re-planner call the same `plan_segments`.

The model, in slots of `settings.slot` counted from `now` (so a plan made now starts on a slot edge):

- the job needs `W` slots of work (its remaining duration at the chosen power limit, rounded up);
- a segment is a run of consecutive slots in one region with room for the job's GPUs in each;
- every resume pays `O` slots of overhead (at full power) before it does work, plus an optional
  fixed energy; a fresh job's first segment, and a segment already running, pay none;
- a segment is paused only after at least `M` slots (the minimum segment, overhead included) and a
  segment after a pause also runs at least `M` slots; only a plan of one segment may be shorter
  (the whole remaining work is shorter than the minimum);
- the work must be done by the deadline; among such plans the one with the least expected
  emissions wins (ties: the earliest finish).

An exact dynamic programme over (slot, work done, segment state): O(slots x M x W) with the work
dimension vectorised. When no plan meets the deadline, the job runs from the earliest slot with
room, in one piece, and the plan says the deadline is at risk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from .grid import EPS, FloatArray, SlotGrid, slot_floor
from .model import PlannerSettings, PowerRequest, RegionForecast, Reservation
from .power import choose_power_limit
from .power_profiles import power_profile

_INF = math.inf
# Segment kinds: the first segment of the plan pays overhead only when it resumes; later ones always do.
_FIRST_FREE, _FIRST_RESUME, _LATER = 0, 1, 2


@dataclass(frozen=True)
class SegmentJob:
    """An interruptible job to plan from `now`: the work left and what a pause costs."""

    key: str
    gpus: int
    remaining: timedelta
    """Work left, as wall time at full power (estimated duration x (1 - progress))."""
    deadline: datetime
    min_segment: timedelta
    resume_overhead: timedelta
    regions: tuple[str, ...]
    """Allowed regions, in the user's order; a job that has run is pinned to its region (one entry)."""
    resume_energy_joules: float = 0.0
    fresh: bool = True
    """Never ran: its first segment starts from scratch and pays no resume overhead."""
    running_since: datetime | None = None
    """It runs now, since then: continuing costs no overhead, and this segment counts toward the minimum."""
    power: PowerRequest = field(default_factory=PowerRequest)


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    resume: bool
    """It resumes from a checkpoint and pays the resume overhead first."""

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentPlan:
    key: str
    region: str
    segments: tuple[Segment, ...]
    power_limit_watts: float | None
    work_slots: int
    """Slots of work the plan provides (overhead excluded)."""
    expected_grams: float
    forecast_intensity: float
    """Mean gCO2eq/kWh over the planned segments."""
    baseline_grams: float
    """Running the remaining work now, in one piece, in the first allowed region."""
    baseline_intensity: float
    deadline_at_risk: bool
    reason: str

    @property
    def start(self) -> datetime:
        return self.segments[0].start

    @property
    def end(self) -> datetime:
        return self.segments[-1].end

    def reservations(self, gpus: int, now: datetime | None = None) -> list[Reservation]:
        """The GPUs the plan holds, one booking per segment (from `now` on, when given)."""
        out = []
        for s in self.segments:
            start = s.start if now is None else max(s.start, now)
            if s.end > start:
                out.append(Reservation(self.region, start, s.end, gpus))
        return out


@dataclass(frozen=True)
class _RegionRun:
    cost: float
    slots: list[tuple[int, int, bool]]
    """(first slot, end slot, resume) per segment."""


def slots_for(d: timedelta, slot: timedelta) -> int:
    return max(math.ceil(d / slot - EPS), 0)


def plan_segments(
    job: SegmentJob,
    regions: Sequence[RegionForecast],
    reservations: Sequence[Reservation],
    now: datetime,
    settings: PlannerSettings,
) -> SegmentPlan:
    """The least-emissions segments for `job` from `now`, in one of its regions (see the module).

    Plans lie on the planner's slot edges, so that plans made minutes apart agree. A plan that starts
    in the current slot starts now: it is made again with the part of the slot already gone added to
    the work (at most a slot's worth of caution), so it still finishes in time.
    """
    allowed = [rf for rf in regions if rf.region in job.regions]
    if not allowed:
        raise ValueError(f"{job.key}: none of its regions ({', '.join(job.regions)}) has a forecast")
    if job.gpus <= 0:
        raise ValueError(f"{job.key}: gpus must be positive")
    edge = slot_floor(now, settings.slot)
    p = _plan_on_edges(job, allowed, reservations, now, settings)
    if job.running_since is None and now > edge and p.start <= now:
        p = _plan_on_edges(replace(job, remaining=job.remaining + (now - edge)), allowed, reservations, now, settings)
    return p


def _plan_on_edges(
    job: SegmentJob,
    allowed: Sequence[RegionForecast],
    reservations: Sequence[Reservation],
    at: datetime,
    settings: PlannerSettings,
) -> SegmentPlan:
    slot = settings.slot
    now = slot_floor(at, slot)
    deadline = max(math.floor((job.deadline - now) / slot + EPS), 0)
    # Long enough to find room after every booking when the deadline cannot be met.
    busy = max((slots_for(r.end - now, slot) for r in reservations if r.region in job.regions), default=0)
    need = 2 * slots_for(job.remaining + job.min_segment + job.resume_overhead, slot) + 4
    length = max(deadline, busy) + need
    grid = SlotGrid(
        allowed, reservations, slot=slot, now=now, horizon=settings.horizon + settings.extrapolation, min_length=length
    )
    candidates: list[tuple[bool, float, int, str, _RegionRun, int, float | None, FloatArray]] = []
    for order, rf in enumerate(sorted(allowed, key=lambda r: job.regions.index(r.region))):
        option = choose_power_limit(power_profile(rf.gpu_model), job.power, settings.default_gpu_watts)
        work = max(slots_for(job.remaining * option.slowdown, slot), 1)
        intensity, free = _shifted(grid, grid.row[rf.region], now, length)
        per_slot = intensity * option.watts * job.gpus * slot.total_seconds() / 3.6e6
        resume = intensity * job.resume_energy_joules / 3.6e6 + _RESUME_TIE
        avail = free >= job.gpus
        if job.running_since is not None:
            avail[0] = True  # it holds its GPUs now (its own booking is not among `reservations`)
        ran = None if job.running_since is None else math.floor((at - job.running_since) / slot + EPS)
        run = _best_run(job, ran, work, per_slot, resume, avail, deadline, slot)
        if run is not None:
            candidates.append((False, run.cost, order, rf.region, run, work, option.limit_watts, intensity))
        else:
            late = _earliest_run(job, work, per_slot, resume, avail, slot)
            end = late.slots[-1][1]
            candidates.append((True, float(end), order, rf.region, late, work, option.limit_watts, intensity))
    at_risk, _, _, region, run, work, limit, intensity = min(candidates, key=lambda c: c[:3])
    segments = tuple(
        Segment(
            job.running_since if (a == 0 and job.running_since is not None) else max(now + slot * a, at),
            now + slot * b,
            resume,
        )
        for a, b, resume in run.slots
    )
    used = [t for a, b, _ in run.slots for t in range(a, b)]
    mean = float(np.mean(intensity[used])) if used else 0.0
    baseline_grams, baseline_intensity = _baseline(job, allowed, grid, now, settings)
    return SegmentPlan(
        key=job.key,
        region=region,
        segments=segments,
        power_limit_watts=limit,
        work_slots=work,
        expected_grams=float(run.cost),
        forecast_intensity=mean,
        baseline_grams=baseline_grams,
        baseline_intensity=baseline_intensity,
        deadline_at_risk=at_risk,
        reason=_reason(region, segments, mean, baseline_intensity, at_risk),
    )


_RESUME_TIE = 1e-6
"""Grams added to every resume: between plans of equal emissions, the one with fewer pauses wins."""


def _baseline(
    job: SegmentJob, allowed: Sequence[RegionForecast], grid: SlotGrid, now: datetime, settings: PlannerSettings
) -> tuple[float, float]:
    """Running the remaining work now, in one piece, in the first allowed region (carbon-blind)."""
    first = min(allowed, key=lambda r: job.regions.index(r.region))
    option = choose_power_limit(power_profile(first.gpu_model), PowerRequest(), settings.default_gpu_watts)
    work = max(slots_for(job.remaining, settings.slot), 1)
    intensity, _ = _shifted(grid, grid.row[first.region], now, work)
    kwh = option.watts * job.gpus * settings.slot.total_seconds() / 3.6e6
    return float(intensity.sum() * kwh), float(intensity.mean())


def _shifted(grid: SlotGrid, row: int, now: datetime, length: int) -> tuple[FloatArray, FloatArray]:
    """Intensity and free GPUs per slot of a grid starting at `now`. The planner's grid is aligned
    to the forecast: a slot of ours straddling two of its slots takes the mean intensity and the
    fewer free GPUs of the two."""
    origin = grid.to_slots(now)
    (free_all,) = grid.ensure(math.ceil(origin) + length + 2, [grid.base_free])
    starts = origin + np.arange(length)
    intensity = np.array([grid.integral(row, float(x), 1.0) / grid.slot_hours for x in starts])
    lo = np.maximum(np.floor(starts + EPS).astype(np.int64), 0)
    hi = np.maximum(np.ceil(starts + 1 - EPS).astype(np.int64), lo + 1)
    free = np.array([free_all[row, a:b].min() for a, b in zip(lo, hi, strict=True)], dtype=np.float64)
    return intensity, free


def _best_run(
    job: SegmentJob,
    ran: int | None,
    work: int,
    per_slot: FloatArray,
    resume: FloatArray,
    avail: npt.NDArray[np.bool_],
    deadline: int,
    slot: timedelta,
) -> _RegionRun | None:
    """The least-emissions plan finishing by slot boundary `deadline`; None if there is none.

    States at a slot boundary: idle, or in a segment of a kind (first-free, first-resume, later)
    for j = 1..m slots (m: m or more), each over the work done so far (0..work-1; reaching `work`
    finishes). A step is one slot; a pause happens at a boundary, from j = m into idle.
    """
    o = slots_for(job.resume_overhead, slot)
    m = max(slots_for(job.min_segment, slot), o + 1, 1)
    overhead = (0, o, o)
    n_states = 1 + 3 * m
    n_w = work + 1
    ws = np.arange(n_w)

    def st(kind: int, j: int) -> int:
        return 1 + kind * m + (j - 1)

    val = np.full((n_states, n_w), _INF)
    must_start = False
    if ran is None:
        val[0, 0] = 0.0
    else:
        if ran >= 1:
            val[st(_FIRST_FREE, min(ran, m)), 0] = 0.0
        else:
            val[0, 0] = 0.0
            must_start = True  # it runs: no pause before its first slot
    first_kind = _FIRST_FREE if (job.fresh or ran is not None) else _FIRST_RESUME
    parents: list[tuple[npt.NDArray[np.int16], npt.NDArray[np.int32]]] = []
    best: tuple[float, int, int] = (_INF, -1, -1)  # cost, finish boundary, state
    for t in range(min(deadline, len(per_slot))):
        new = np.full((n_states, n_w), _INF)
        ps = np.full((n_states, n_w), -1, dtype=np.int16)
        pw = np.full((n_states, n_w), -1, dtype=np.int32)

        def relax(
            dst: int,
            cand: FloatArray,
            src: int,
            gain: int,
            new: FloatArray = new,
            ps: npt.NDArray[np.int16] = ps,
            pw: npt.NDArray[np.int32] = pw,
        ) -> None:
            shifted = np.full(n_w, _INF)
            shifted[gain:] = cand[: n_w - gain] if gain else cand
            better = shifted < new[dst] - EPS
            new[dst] = np.where(better, shifted, new[dst])
            ps[dst] = np.where(better, src, ps[dst])
            pw[dst] = np.where(better, ws - gain, pw[dst])

        if not (must_start and t == 0):
            relax(0, val[0], 0, 0)
        if avail[t]:
            for kind in (_FIRST_FREE, _FIRST_RESUME, _LATER):
                if kind == _LATER:
                    src = np.where(ws >= 1, val[0], _INF)
                elif kind == first_kind:
                    src = np.where(ws == 0, val[0], _INF)
                else:
                    continue
                add = per_slot[t] + (resume[t] if kind != _FIRST_FREE else 0.0)
                relax(st(kind, 1), src + add, 0, 1 if overhead[kind] < 1 else 0)
                if must_start and t == 0:
                    break
            for kind in (_FIRST_FREE, _FIRST_RESUME, _LATER):
                relax(st(kind, m), val[st(kind, m)] + per_slot[t], st(kind, m), 1)  # m > overhead: work
                for j in range(m, 1, -1):
                    gain = 1 if j > overhead[kind] else 0
                    relax(st(kind, j), val[st(kind, j - 1)] + per_slot[t], st(kind, j - 1), gain)
        # The work is done at boundary t+1: a later segment must have run its minimum.
        for kind in (_FIRST_FREE, _FIRST_RESUME, _LATER):
            for j in range(1, m + 1):
                v = new[st(kind, j), work]
                if v < best[0] - EPS and (kind != _LATER or j == m):
                    best = (float(v), t + 1, st(kind, j))
        new[1:, work] = _INF
        # A pause at boundary t+1, after at least m slots (parent encoded as -1 - state: same boundary).
        for kind in (_FIRST_FREE, _FIRST_RESUME, _LATER):
            s = st(kind, m)
            better = new[s] < new[0] - EPS
            new[0] = np.where(better, new[s], new[0])
            ps[0] = np.where(better, -1 - s, ps[0])
            pw[0] = np.where(better, ws, pw[0])
        parents.append((ps, pw))
        val = new
    if best[1] < 0:
        return None
    return _RegionRun(best[0], _backtrack(best[1], best[2], work, m, parents))


def _backtrack(
    boundary: int, state: int, work: int, m: int, parents: Sequence[tuple[npt.NDArray[np.int16], npt.NDArray[np.int32]]]
) -> list[tuple[int, int, bool]]:
    """Walk the parents back from the finish; returns (first slot, end slot, resume) per segment."""
    running: list[tuple[int, int, bool]] = []  # (slot, state after it, whether it starts a segment)
    b, s, w = boundary, state, work
    while b > 0:
        ps, pw = parents[b - 1]
        p, q = int(ps[s, w]), int(pw[s, w])
        if p < 0:
            s, w = -1 - p, q  # a pause at this boundary: same boundary, the segment before it
            continue
        if s != 0:
            running.append((b - 1, s, p == 0))
        s, w = p, q
        b -= 1
    running.reverse()
    segments: list[tuple[int, int, bool]] = []
    for t, s, starts in running:
        if starts or not segments:
            segments.append((t, t + 1, (s - 1) // m != _FIRST_FREE))
        else:
            a, _, resume = segments[-1]
            segments[-1] = (a, t + 1, resume)
    return segments


def _earliest_run(
    job: SegmentJob, work: int, per_slot: FloatArray, resume: FloatArray, avail: npt.NDArray[np.bool_], slot: timedelta
) -> _RegionRun:
    """No plan meets the deadline: one piece from the earliest slot with room (now, if none has)."""
    pays = not job.fresh and job.running_since is None
    length = work + (slots_for(job.resume_overhead, slot) if pays else 0)
    start = 0
    if job.running_since is None:
        fits = [t for t in range(len(per_slot) - length + 1) if avail[t : t + length].all()]
        start = fits[0] if fits else 0
    cost = float(per_slot[start : start + length].sum() + (resume[start] if pays else 0.0))
    return _RegionRun(cost, [(start, start + length, pays)])


def _reason(region: str, segments: Sequence[Segment], mean: float, baseline: float, at_risk: bool) -> str:
    spans = ", ".join(f"{s.start:%a %H:%M}-{s.end:%H:%M}" for s in segments[:6])
    more = f" and {len(segments) - 6} more" if len(segments) > 6 else ""
    n = len(segments)
    what = f"Runs in {n} segment{'s' if n != 1 else ''} in {region} ({spans}{more} UTC)"
    if at_risk:
        return f"{what}: the work no longer fits before the deadline; runs as soon as there is room"
    return f"{what}: forecast {mean:.0f} vs {baseline:.0f} gCO2/kWh running now"
