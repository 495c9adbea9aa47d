"""Finding the cheapest (or earliest) place for one job on the slot grid, vectorised over regions
and start slots with prefix sums. Pure functions of the grid and a free-GPU array."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from .grid import EPS, FloatArray, IntArray, SlotGrid
from .power import PowerOption

BoolArray = npt.NDArray[np.bool_]

_REL_TIE = 1e-9
"""Costs this close count as equal, so float noise never beats 'earlier' or 'preferred region'."""
_NO_RANK = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class RegionGroup:
    """A job's allowed regions that share one GPU model (and so one list of power options)."""

    rows: IntArray
    ranks: IntArray
    """Position of each row in the job's region preference order."""
    options: tuple[PowerOption, ...]
    """Fastest first; ``options[0]`` is what a carbon-blind scheduler runs."""


@dataclass(frozen=True)
class JobContext:
    """A job translated into slot units for one planning call."""

    index: int
    gpus: int
    earliest_time: datetime
    s0: int
    offset: float
    """Earliest start within slot ``s0``, as a fraction of a slot (``now`` may be mid-slot)."""
    deadline: float
    duration: float
    """Slots at the default limit."""
    groups: tuple[RegionGroup, ...]
    max_region_capacity: int


@dataclass(frozen=True, slots=True)
class Placement:
    row: int
    start_time: datetime
    start: float
    """Slots from the grid origin."""
    occupy_from: int
    occupy_to: int
    option: PowerOption
    grams: float
    intensity: float
    """Mean forecast intensity over the run."""


class FreeGpus:
    """Free GPUs per region and slot; grows with the grid."""

    def __init__(self, free: IntArray) -> None:
        self.array = free

    def copy(self) -> FreeGpus:
        return FreeGpus(self.array.copy())

    def fit(self, grid: SlotGrid) -> None:
        have = self.array.shape[1]
        if have < grid.length:
            self.array = np.concatenate([self.array, grid.base_free[:, have:]], axis=1)

    def take(self, p: Placement, gpus: int) -> None:
        self.array[p.row, p.occupy_from : p.occupy_to] -= gpus


def _start_time(grid: SlotGrid, ctx: JobContext, col: int) -> datetime:
    return ctx.earliest_time if col == 0 else grid.origin + grid.slot * (ctx.s0 + col)


@dataclass(frozen=True, slots=True)
class _Candidate:
    score: float
    scores: FloatArray
    grams: FloatArray
    group: RegionGroup
    option_rank: int
    occ: int
    occ0: int


def best_placement(
    grid: SlotGrid,
    ctx: JobContext,
    free: FreeGpus,
    prices: FloatArray | None = None,
    *,
    columns: int | None = None,
    preferred_only: bool = False,
    fallback: FreeGpus | None = None,
) -> Placement | None:
    """The least-emission (region, start, power option) that fits capacity and finishes by the
    deadline, starting inside the forecast horizon. Ties go to the earliest start, then the
    preferred region, then the faster option. None when nothing fits.

    ``prices``: prefix sums over slots of a per-GPU price (grams) per region and slot, added to the
    emissions when choosing so jobs avoid contended slots; the placement still reports emissions.
    ``columns``: consider only the first this many starts (1: start at the earliest time only).
    ``preferred_only``: consider only the job's first allowed region.
    ``fallback``: where nothing fits ``free``, the best in these GPUs instead.
    """
    return _pick(grid, ctx, _candidates(grid, ctx, free, prices, columns, preferred_only, fallback))


def best_by_region(grid: SlotGrid, ctx: JobContext, free: FreeGpus) -> list[Placement]:
    """``best_placement`` within each allowed region alone (regions where nothing fits left out),
    cheapest first."""
    found = _candidates(grid, ctx, free, None, None, False)
    out: list[Placement] = []
    for group in ctx.groups:
        for a in range(len(group.rows)):
            mine = np.arange(len(group.rows))[:, None] == a
            only = [
                replace(c, score=float(c.scores[a].min()), scores=np.where(mine, c.scores, np.inf))
                for c in found
                if c.group is group and math.isfinite(float(c.scores[a].min()))
            ]
            p = _pick(grid, ctx, only)
            if p is not None:
                out.append(p)
    return sorted(out, key=lambda p: p.grams)


def _candidates(
    grid: SlotGrid,
    ctx: JobContext,
    free: FreeGpus,
    prices: FloatArray | None,
    columns: int | None,
    preferred_only: bool,
    fallback: FreeGpus | None = None,
) -> list[_Candidate]:
    """Per region group and power option: the score (and emissions) of every start in every
    region, inf where it does not fit or misses the deadline. When nothing fits ``free`` at all,
    the same in ``fallback`` (the costs computed once)."""
    s0, off = ctx.s0, ctx.offset
    slot_h = grid.slot_hours
    # Per group: its rows, window width, and per option what does not depend on the free GPUs.
    prepared: list[tuple[RegionGroup, int, list[tuple[int, int, int, int, FloatArray, BoolArray, FloatArray]]]] = []
    for group in ctx.groups:
        if preferred_only and not bool(np.any(group.ranks == 0)):
            continue
        # Per option: columns allowed by the deadline (column 0 = start at the earliest time).
        spans: list[tuple[int, float, int, int, int, bool]] = []
        n_max = 0
        reach = 0
        for rank, opt in enumerate(group.options):
            x = ctx.duration * opt.slowdown
            hi = math.floor(ctx.deadline - x + EPS) - s0
            c0_ok = off + x <= ctx.deadline - s0 + EPS
            n = max(hi + 1, 1 if c0_ok else 0)
            if n <= 0:
                continue
            occ = math.ceil(x - EPS)
            occ0 = math.ceil(off + x - EPS)
            spans.append((rank, x, n, occ, occ0, c0_ok))
            n_max = max(n_max, n)
            reach = max(reach, occ0, occ, math.floor(x) + 1)
        if not spans:
            continue
        limits = np.maximum(grid.start_limit[group.rows] - s0, 1)
        n_max = min(n_max, int(limits.max()), n_max if columns is None else columns)
        width = n_max + reach + 1
        if s0 + width > grid.length:
            grid.ensure(s0 + width, [])
        rows = group.rows
        inten = grid.intensity[rows, s0 : s0 + width]
        cum = grid.cum[rows, s0 : s0 + width + 1]
        cols = np.arange(n_max)[None, :]
        pcum = None
        if prices is not None:
            pcum = prices[rows, s0 : s0 + width + 1]
            if pcum.shape[1] < width + 1:  # the grid grew past the prices: no price beyond them
                edge = prices[rows, -1:] if pcum.shape[1] == 0 else pcum[:, -1:]
                pcum = np.concatenate([pcum, np.repeat(edge, width + 1 - pcum.shape[1], axis=1)], axis=1)
        options = []
        for rank, x, n_opt, occ, occ0, c0_ok in spans:
            opt = group.options[rank]
            n = min(n_opt, n_max)
            full = math.floor(x)
            frac = x - full
            cost = cum[:, full : full + n] - cum[:, :n] + (frac * slot_h) * inten[:, full : full + n]
            if off > 0:
                y1 = off + x
                i1 = math.floor(y1)
                cost[:, 0] = (cum[:, i1] + (y1 - i1) * slot_h * inten[:, i1]) - (cum[:, 0] + off * slot_h * inten[:, 0])
            allowed = cols[:, :n] < limits[:, None]
            if not c0_ok:
                allowed[:, 0] = False
            if preferred_only:
                allowed &= (group.ranks == 0)[:, None]
            grams = cost * (ctx.gpus * opt.watts / 1000.0)
            pen = np.zeros_like(grams)
            if pcum is not None:
                pen = pcum[:, occ : occ + n] - pcum[:, :n]
                pen[:, 0] = pcum[:, occ0] - pcum[:, 0]
                pen = ctx.gpus * pen
            options.append((rank, occ, occ0, n, grams, allowed, pen))
        prepared.append((group, width, options))
    found = _fitting(ctx, free, grid, prepared, prices is not None)
    if not found and fallback is not None:
        found = _fitting(ctx, fallback, grid, prepared, prices is not None)
    return found


def _fitting(
    ctx: JobContext,
    free: FreeGpus,
    grid: SlotGrid,
    prepared: list[tuple[RegionGroup, int, list[tuple[int, int, int, int, FloatArray, BoolArray, FloatArray]]]],
    priced: bool,
) -> list[_Candidate]:
    """``_candidates``' second half: the starts that fit ``free``."""
    s0 = ctx.s0
    found: list[_Candidate] = []
    free.fit(grid)
    for group, width, options in prepared:
        blocked = np.zeros((len(group.rows), width + 1), dtype=np.int64)
        np.cumsum(free.array[group.rows, s0 : s0 + width] < ctx.gpus, axis=1, out=blocked[:, 1:])
        for rank, occ, occ0, n, grams, allowed, pen in options:
            ok = blocked[:, occ : occ + n] == blocked[:, :n]
            if ctx.offset > 0:
                ok[:, 0] = blocked[:, occ0] == blocked[:, 0]
            ok &= allowed
            grams_m = np.where(ok, grams, np.inf)
            score = grams_m + pen if priced else grams_m
            best = float(score.min())
            if math.isfinite(best):
                found.append(_Candidate(best, score, grams_m, group, rank, occ, occ0))
    return found


def _pick(grid: SlotGrid, ctx: JobContext, found: list[_Candidate]) -> Placement | None:
    """The best of the candidates' starts: least score, then earliest, preferred region, faster."""
    s0, off = ctx.s0, ctx.offset
    slot_h = grid.slot_hours
    if not found:
        return None
    m = min(c.score for c in found)
    tol = abs(m) * _REL_TIE + 1e-12
    choice: tuple[int, int, int] | None = None
    picked: tuple[_Candidate, int] | None = None
    for c in found:
        if c.score > m + tol:
            continue
        hit = c.scores <= m + tol
        col = int(np.argmax(hit.any(axis=0)))
        a = int(np.argmin(np.where(hit[:, col], c.group.ranks, _NO_RANK)))
        key = (col, int(c.group.ranks[a]), c.option_rank)
        if choice is None or key < choice:
            choice, picked = key, (c, a)
    assert choice is not None and picked is not None
    c, a = picked
    col = choice[0]
    opt = c.group.options[c.option_rank]
    x = ctx.duration * opt.slowdown
    grams = float(c.grams[a, col])
    kw = ctx.gpus * opt.watts / 1000.0
    length = c.occ0 if col == 0 else c.occ
    return Placement(
        row=int(c.group.rows[a]),
        start_time=_start_time(grid, ctx, col),
        start=s0 + off if col == 0 else float(s0 + col),
        occupy_from=s0 + col,
        occupy_to=s0 + col + length,
        option=opt,
        grams=grams,
        intensity=grams / (kw * x * slot_h) if x > 0 and kw > 0 else 0.0,
    )


def placement_at(
    grid: SlotGrid,
    ctx: JobContext,
    free: FreeGpus | None,
    row: int,
    start_time: datetime,
    option: PowerOption,
) -> Placement | None:
    """A given (region, start, option), priced on the grid; None when it no longer fits capacity
    (``free`` None skips the check)."""
    start = grid.to_slots(start_time)
    x = ctx.duration * option.slowdown
    a = max(math.floor(start + EPS), 0)
    b = max(math.ceil(start + x - EPS), a + 1)
    if b + 1 > grid.length:
        grid.ensure(b + 1, [])
    if free is not None:
        free.fit(grid)
        if bool(np.any(free.array[row, a:b] < ctx.gpus)):
            return None
    integral = grid.integral(row, start, x)
    grams = ctx.gpus * option.watts / 1000.0 * integral
    intensity = integral / (x * grid.slot_hours) if x > 0 else 0.0
    return Placement(row, start_time, start, a, b, option, grams, intensity)


def earliest_placement(grid: SlotGrid, ctx: JobContext, free: FreeGpus, option_index: int = 0) -> Placement | None:
    """The earliest start with room in any allowed region (preferred region on ties), ignoring
    deadlines and forecasts: what a carbon-blind scheduler does. None when the job needs more GPUs
    than any allowed region has."""
    if ctx.gpus > ctx.max_region_capacity:
        return None
    s0, off = ctx.s0, ctx.offset
    chunk = 256
    while True:
        best: tuple[int, int, RegionGroup, int, int, int] | None = None
        for group in ctx.groups:
            opt = group.options[min(option_index, len(group.options) - 1)]
            x = ctx.duration * opt.slowdown
            occ = math.ceil(x - EPS)
            occ0 = math.ceil(off + x - EPS)
            width = chunk + max(occ, occ0) + 1
            if s0 + width > grid.length:
                grid.ensure(s0 + width, [])
            free.fit(grid)
            blocked = np.zeros((len(group.rows), width + 1), dtype=np.int64)
            np.cumsum(free.array[group.rows, s0 : s0 + width] < ctx.gpus, axis=1, out=blocked[:, 1:])
            ok = blocked[:, occ : occ + chunk] == blocked[:, :chunk]
            ok[:, 0] = blocked[:, occ0] == blocked[:, 0]
            any_col = ok.any(axis=0)
            if not any_col.any():
                continue
            col = int(np.argmax(any_col))
            a = int(np.argmin(np.where(ok[:, col], group.ranks, _NO_RANK)))
            key = (col, int(group.ranks[a]))
            if best is None or key < (best[0], best[1]):
                best = (col, int(group.ranks[a]), group, a, occ, occ0)
        if best is not None:
            col, _, group, a, occ, occ0 = best
            opt = group.options[min(option_index, len(group.options) - 1)]
            placed = placement_at(grid, ctx, None, int(group.rows[a]), _start_time(grid, ctx, col), opt)
            assert placed is not None
            return placed
        chunk *= 2
