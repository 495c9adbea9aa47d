"""Congestion prices: what a GPU-slot in each region is worth when more jobs want it than fit.

The Lagrangian relaxation of the capacity constraints: at prices ``p`` (grams per GPU-slot) every
job alone takes its cheapest placement counting ``emissions + gpus x sum of p over its slots``,
and ``L(p) = sum of those minima - sum of p x capacity`` is a lower bound on the best schedule's
emissions. Projected subgradient ascent (Polyak steps towards a known schedule's emissions,
halved when the bound stalls) finds prices close to the LP duals in a few dozen rounds; the
greedy then uses them to give contended slots to the jobs that gain most from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .grid import FloatArray, IntArray, SlotGrid
from .placement import FreeGpus, JobContext, best_placement

_STALL_ROUNDS = 3
"""Rounds without a better bound before the step size is halved."""


def prefix(values: FloatArray) -> FloatArray:
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


@dataclass(frozen=True)
class Prices:
    cum: FloatArray
    """Prefix sums over slots of the per-GPU price, per region: what ``best_placement`` takes."""
    lower_bound: float
    """Best Lagrangian bound seen: no schedule of these jobs (those that can meet their deadline)
    emits less."""


def congestion_prices(
    grid: SlotGrid, contexts: Sequence[JobContext], upper_bound: float, rounds: int, room: IntArray
) -> Prices | None:
    """Prices after at most ``rounds`` (>= 2) subgradient steps; None when the jobs' separate
    best placements already fit together (no contention, nothing to price).

    ``upper_bound``: the emissions of some schedule of these jobs (the Polyak target).
    ``room``: GPUs the jobs may use per region and slot (free of fixed reservations and reserve)."""
    if rounds < 2:
        return None
    prices = np.zeros((len(grid.names), grid.length))
    best: tuple[float, FloatArray] | None = None
    theta = 1.0
    stall = 0
    for k in range(rounds):
        cum = prefix(prices)
        alone = FreeGpus(room)  # read only: each job alone against the fixed reservations
        picks = [best_placement(grid, ctx, alone, cum) for ctx in contexts]
        room = alone.array  # grown with the grid if a late placement needed more slots
        if prices.shape[1] < grid.length:
            prices = np.pad(prices, ((0, 0), (0, grid.length - prices.shape[1])))
            cum = prefix(prices)
        cap = np.maximum(room[:, : prices.shape[1]], 0).astype(np.float64)
        usage = np.zeros_like(prices)
        value = 0.0
        for ctx, p in zip(contexts, picks, strict=True):
            if p is None:
                continue  # cannot meet its deadline anywhere: not part of the relaxation
            usage[p.row, p.occupy_from : p.occupy_to] += ctx.gpus
            value += p.grams + ctx.gpus * float(cum[p.row, p.occupy_to] - cum[p.row, p.occupy_from])
        value -= float((prices * cap).sum())
        if k == 0 and not np.any(usage > cap):
            return None
        if best is None or value > best[0] + 1e-9 * abs(best[0]):
            best = (value, prices.copy())
            stall = 0
        else:
            stall += 1
            if stall >= _STALL_ROUNDS:
                theta /= 2
                stall = 0
        step_dir = usage - cap
        step_dir[(prices <= 0) & (step_dir < 0)] = 0.0  # projection onto prices >= 0
        norm = float((step_dir * step_dir).sum())
        if norm == 0:
            break  # the picks fit exactly where prices are positive: optimal prices
        gap = max(upper_bound - value, 1e-3 * abs(value) + 1e-9)
        prices = np.maximum(prices + theta * gap / norm * step_dir, 0.0)
    assert best is not None
    bound, best_prices = best
    if not np.any(best_prices > 0):
        return None
    return Prices(prefix(best_prices), bound if math.isfinite(bound) else -math.inf)
