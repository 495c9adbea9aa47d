"""The oracle: the least-emission schedule with perfect knowledge of every job and of the traces.

The problem: each job picks one column (region, start, power limit) from the same choices the
planner has (start at submission or at a slot boundary up to the latest start; every Auto limit
on the grid, not just the planner's pruned set), subject to GPU capacity per region and slot.
Solved by column generation on the LP relaxation with HiGHS (scipy): the restricted master LP
gives duals, and pricing searches *all* columns of every job for negative reduced cost.

What comes out:
- ``lower_bound``: the Lagrangian bound ``sum_j min_k (c_k + g_j * sum_occ p) - sum p * C`` at the
  best prices seen, the minimum over each job's *allowed* columns. It holds for every schedule made
  of allowed columns, whatever the column set generated, so it is a proven lower bound on their
  emissions. Which columns are allowed is the question of lateness:

  - ``may_be_late=None`` (the default): every column, late ones at a penalty. The bound is then on
    emissions plus penalties, so it is reported only when the best schedule needs no late start.
  - ``may_be_late=L`` (job indices): the jobs in L may start late, at no penalty (up to a day past
    their latest start, or as late as ``initial`` has them); every other job's late columns are
    left out of the bound. The bound then holds for the emissions of every schedule whose late
    jobs are among L: give L as a plan's late jobs and the plan is one of them, so capture against
    it compares the plan with the best schedule that has the same on-time promises kept (or more).
- ``schedule``: the best integer schedule HiGHS finds (MILP) over the generated columns: a
  feasible schedule, so an upper bound on the optimum. Without capacity pressure both coincide.

Starts after a job's latest start are allowed at a large penalty, so the problem is always
feasible; any late start in the result is reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from green_operator.planner import PowerOption, PowerRequest, power_options, power_profile
from green_operator.planner.grid import EPS

from .engine import RunRecord
from .jobs_file import SimJob
from .world import World

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Job:
    index: int
    gpus: int
    rows: tuple[int, ...]
    options: tuple[PowerOption, ...]
    s0: int
    offset: float
    deadline: float
    duration: float
    n_cols: int
    penalty: float
    """Added to a late column's cost in the LP and MILP (0 for a job that may be late)."""
    bound_late: float
    """Added to a late column in the bound: 0 or the penalty, inf when left out of the bound."""


@dataclass(frozen=True)
class _Column:
    job: int
    row: int
    col: int
    option: int
    cost: float
    occ_from: int
    occ_to: int
    late: bool
    gpus: int


@dataclass(frozen=True)
class OracleResult:
    records: list[RunRecord]
    grams: float
    """Emissions of the best integer schedule found."""
    lower_bound: float | None
    """Proven lower bound on the optimum's emissions (see the module docstring: with
    ``may_be_late`` always set; without, None when some start had to be late)."""
    lp_value: float
    columns: int
    iterations: int
    converged: bool
    late: int
    seconds: float


def _columns_for(world: World, job: _Job, opt_i: int, row: int) -> tuple[FloatArray, int, int, int]:
    """Emission cost of each start column (0 = at submission) for one (option, region)."""
    opt = job.options[opt_i]
    x = job.duration * opt.slowdown
    n = job.n_cols
    full = math.floor(x)
    frac = x - full
    s0, off = job.s0, job.offset
    cum = world.cum[row]
    inten = world.truth[row]
    idx = np.arange(s0, s0 + n)
    cost = cum[idx + full] - cum[idx] + frac * world.slot_hours * inten[idx + full]
    if off > 0:
        cost[0] = world.integral(row, s0 + off, x)
    scale = job.gpus * opt.watts / 1000.0
    occ = math.ceil(x - EPS)
    occ0 = math.ceil(off + x - EPS)
    return cost * scale, occ, occ0, full


def _late_mask(job: _Job, opt: PowerOption) -> npt.NDArray[np.bool_]:
    x = job.duration * opt.slowdown
    cols = np.arange(job.n_cols)
    starts = job.s0 + cols.astype(np.float64)
    starts[0] = job.s0 + job.offset
    return np.asarray(starts + x > job.deadline + EPS)


def solve_oracle(
    world: World,
    jobs: Sequence[SimJob],
    power: PowerRequest,
    gpu_watts: float,
    initial: Sequence[RunRecord],
    *,
    time_limit_s: float = 120.0,
    max_iterations: int = 200,
    may_be_late: Collection[int] | None = None,
    integer: bool = True,
    log: Callable[[str], None] | None = None,
) -> OracleResult:
    """See the module docstring. ``integer=False`` skips the MILP (the bound alone, much cheaper):
    the schedule returned is then ``initial``'s."""
    from scipy.optimize import Bounds, LinearConstraint, linprog, milp

    t_start = time.monotonic()
    profile = power_profile(world.gpu_model)
    opts = tuple(power_options(profile, power, gpu_watts))
    slot = world.slot
    len(world.regions) * world.length
    cap = np.array([world.capacity[r] for r in world.regions], dtype=np.float64)
    max_truth = float(world.truth.max())

    late_ok = frozenset(may_be_late or ())
    prepared: list[_Job] = []
    for i, (j, rec) in enumerate(zip(jobs, initial, strict=True)):
        pos = world.to_slots(j.submit_time)
        s0 = max(math.floor(pos + EPS), 0)
        off = pos - s0 if pos - s0 > EPS else 0.0
        d = j.duration / slot
        dl = world.to_slots(j.deadline)
        x_max = d * max(o.slowdown for o in opts)
        # Up to a day past the latest start (late, penalised) and never past the traces.
        last = max(s0, math.floor(dl - d + EPS)) + math.ceil(timedelta(days=1) / slot)
        last = max(last, math.ceil(world.to_slots(rec.start)))  # the seed schedule's start, however late
        n = max(1, min(last - s0 + 1, world.length - s0 - math.ceil(x_max) - 2))
        penalty = 10.0 * j.gpus * max(o.watts for o in opts) / 1000.0 * x_max * world.slot_hours * max_truth + 1e3
        bound_late = penalty
        if may_be_late is not None:
            penalty, bound_late = (0.0, 0.0) if i in late_ok else (penalty, math.inf)
        rows = tuple(world.row[r] for r in j.regions)
        prepared.append(_Job(i, j.gpus, rows, opts, s0, off, dl, d, n, penalty, bound_late))

    columns: list[_Column] = []
    seen: dict[tuple[int, int, int, int], int] = {}

    def add(job: _Job, row: int, col: int, opt_i: int) -> int:
        key = (job.index, row, col, opt_i)
        if key in seen:
            return seen[key]
        seen[key] = len(columns)
        cost, occ, occ0, _ = _columns_for(world, job, opt_i, row)
        late = bool(_late_mask(job, job.options[opt_i])[col])
        length = occ0 if col == 0 else occ
        a = job.s0 + col
        columns.append(
            _Column(
                job.index,
                row,
                col,
                opt_i,
                float(cost[col]) + (job.penalty if late else 0.0),
                a,
                a + length,
                late,
                job.gpus,
            )
        )
        return seen[key]

    # Seed: the plan arm's schedule, a feasible one (pricing adds every job's best soon after).
    seed: list[int] = []
    for job, rec in zip(prepared, initial, strict=True):
        row = world.row[rec.region]
        pos = world.to_slots(rec.start)
        col = 0 if abs(pos - (job.s0 + job.offset)) < 1e-6 else round(pos) - job.s0
        opt_i = _option_index(job.options, rec.power_limit_watts)
        if not (0 <= col < job.n_cols and opt_i is not None):
            raise RuntimeError(f"oracle: the seed start of job {jobs[job.index].id!r} is off the column grid")
        seed.append(add(job, row, col, opt_i))

    prices = np.zeros((len(world.regions), world.length))
    best_bound = -math.inf
    lp_value = math.inf
    iterations = 0
    converged = False

    def price(p: FloatArray) -> tuple[float, list[tuple[_Job, int, int, int, float]]]:
        """Lagrangian value and, per job and region, the column of least priced cost."""
        pp = np.zeros((p.shape[0], p.shape[1] + 1))
        np.cumsum(p, axis=1, out=pp[:, 1:])
        total = 0.0
        found: list[tuple[_Job, int, int, int, float]] = []
        for job in prepared:
            job_best = math.inf
            for row in job.rows:
                row_best: tuple[float, int, int] | None = None
                for opt_i, opt in enumerate(job.options):
                    cost, occ, occ0, _ = _columns_for(world, job, opt_i, row)
                    late = _late_mask(job, opt)
                    idx = np.arange(job.s0, job.s0 + job.n_cols)
                    pen = pp[row, idx + occ] - pp[row, idx]
                    pen[0] = pp[row, job.s0 + occ0] - pp[row, job.s0]
                    priced = cost + job.gpus * pen
                    value = priced + np.where(late, job.penalty, 0.0)
                    c = int(np.argmin(value))
                    v = float(value[c])
                    if row_best is None or v < row_best[0]:
                        row_best = (v, c, opt_i)
                    # The bound: the job's allowed columns only (late ones may be left out).
                    job_best = min(job_best, float((priced + np.where(late, job.bound_late, 0.0)).min()))
                assert row_best is not None
                found.append((job, row, row_best[1], row_best[2], row_best[0]))
            total += job_best
        return total - float((p * cap[:, None]).sum()), found

    x_lp = np.zeros(0)
    while iterations < max_iterations and time.monotonic() - t_start < (0.6 if integer else 1.0) * time_limit_s:
        iterations += 1
        c, a_eq, a_ub = _matrices(columns, prepared, world.length, len(world.regions))
        res = linprog(
            c,
            A_ub=a_ub,
            b_ub=np.repeat(cap, world.length),
            A_eq=a_eq,
            b_eq=np.ones(len(prepared)),
            bounds=(0, None),
            method="highs",
        )
        if res.status != 0:
            raise RuntimeError(f"oracle LP failed: {res.message}")
        lp_value = float(res.fun)
        x_lp = np.asarray(res.x)
        duals = np.asarray(res.eqlin.marginals)
        prices = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0).reshape(len(world.regions), world.length)
        bound, found = price(prices)
        best_bound = max(best_bound, bound)
        added = 0
        tol = 1e-7 * max(abs(lp_value), 1.0)
        for job, row, col, opt_i, value in found:
            if value - duals[job.index] < -tol:
                before = len(columns)
                add(job, row, col, opt_i)
                added += len(columns) - before
        if log is not None:
            log(
                f"oracle iteration {iterations}: LP {lp_value:.1f} bound {best_bound:.1f} "
                f"columns {len(columns)} (+{added}) at {time.monotonic() - t_start:.1f}s"
            )
        if added == 0 or lp_value - best_bound <= 1e-6 * max(abs(lp_value), 1.0):
            converged = True
            break

    if not integer:
        return OracleResult(
            records=list(initial),
            grams=sum(r.grams for r in initial),
            # Without ``may_be_late`` the bound holds for on-time schedules (they pay no penalty).
            lower_bound=best_bound if may_be_late is not None or all(r.deadline_met for r in initial) else None,
            lp_value=lp_value,
            columns=len(columns),
            iterations=iterations,
            converged=converged,
            late=sum(not r.deadline_met for r in initial),
            seconds=time.monotonic() - t_start,
        )
    # The planner's own search with perfect knowledge, steered by the LP's prices: good integer
    # schedules that the MILP starts from (and that keep "best found" honest against the plan).
    heuristic = [
        [add(job, row, col, opt_i) for job, (row, col, opt_i) in zip(prepared, picks, strict=True)]
        for picks in _planner_schedules(world, jobs, prepared, power, gpu_watts, prices)
    ]
    c, a_eq, a_ub = _matrices(columns, prepared, world.length, len(world.regions))
    n_cols = len(columns)
    capacity_rows = np.repeat(cap, world.length)
    selections = [seed, *heuristic, _round(columns, x_lp[:n_cols], seed, capacity_rows, world.length)]
    remaining = max(10.0, time_limit_s - (time.monotonic() - t_start))
    if log is not None:
        log(f"oracle MILP over {n_cols} columns, {remaining:.0f}s")
    res = milp(
        c[:n_cols],
        constraints=[
            LinearConstraint(a_eq[:, :n_cols], np.ones(len(prepared)), np.ones(len(prepared))),
            LinearConstraint(a_ub[:, :n_cols], -np.inf, capacity_rows),
        ],
        integrality=np.ones(n_cols),
        bounds=Bounds(0, 1),
        options={"time_limit": remaining, "mip_rel_gap": 1e-6},
    )
    if res.x is not None:
        selections.append([int(k) for k in np.flatnonzero(res.x > 0.5)])
    if log is not None:
        totals = [None if sel is None else round(sum(columns[k].cost for k in sel)) for sel in selections]
        log(f"oracle MILP: {res.message}; seed, rounding, MILP totals (with late penalties): {totals}")
    usable = [sel for sel in selections if sel is not None and len(sel) == len(prepared)]
    best_sel = min(usable, key=lambda sel: sum(columns[k].cost for k in sel))
    chosen = [columns[k] for k in best_sel]
    records: list[RunRecord | None] = [None] * len(prepared)
    for pick in chosen:
        job = prepared[pick.job]
        sj = jobs[pick.job]
        opt = job.options[pick.option]
        start = max(sj.submit_time, world.origin) if pick.col == 0 else world.origin + slot * (job.s0 + pick.col)
        records[pick.job] = RunRecord(
            sj.id,
            world.regions[pick.row],
            start,
            opt.limit_watts,
            sj.duration * opt.slowdown,
            pick.cost - (job.penalty if pick.late else 0.0),
            not pick.late,
        )
    done = [r for r in records if r is not None]
    late = sum(not r.deadline_met for r in done)
    return OracleResult(
        records=done,
        grams=sum(r.grams for r in done),
        lower_bound=best_bound if late == 0 or may_be_late is not None else None,
        lp_value=lp_value,
        columns=len(columns),
        iterations=iterations,
        converged=converged,
        late=late,
        seconds=time.monotonic() - t_start,
    )


def _round(
    columns: Sequence[_Column], x: FloatArray, seed: Sequence[int], capacity_rows: FloatArray, length: int
) -> list[int] | None:
    """LP rounding: jobs in order of their most confident LP column, each taking its columns by
    LP weight then cost, the first that still fits; its seed column as a last resort."""
    by_job: dict[int, list[int]] = {}
    for k, col in enumerate(columns):
        by_job.setdefault(col.job, []).append(k)
    left = capacity_rows.astype(np.float64).copy()
    weight = np.zeros(len(columns)) if len(x) != len(columns) else x
    order = sorted(by_job, key=lambda j: -max(weight[k] for k in by_job[j]))
    chosen: list[int] = []
    for j in order:
        ks = sorted(by_job[j], key=lambda k: (-round(float(weight[k]), 6), columns[k].cost))
        ks.append(seed[j])
        for k in ks:
            col = columns[k]
            rows = col.row * length + np.arange(col.occ_from, min(col.occ_to, length))
            if np.all(left[rows] >= col.gpus):
                left[rows] -= col.gpus
                chosen.append(k)
                break
        else:
            return None
    return chosen


def _option_index(options: tuple[PowerOption, ...], limit: float | None) -> int | None:
    return next((i for i, o in enumerate(options) if o.limit_watts == limit), None)


def _matrices(
    columns: Sequence[_Column], jobs: Sequence[_Job], length: int, n_regions: int
) -> tuple[FloatArray, Any, Any]:
    """Objective and constraints; the last ``len(jobs)`` variables are artificial "unplaced"
    columns at a prohibitive cost, so the restricted master is always feasible."""
    from scipy import sparse

    n_jobs = len(jobs)
    n = len(columns) + n_jobs
    c = np.array([col.cost for col in columns] + [100.0 * j.penalty for j in jobs])
    eq_rows = np.array([col.job for col in columns] + list(range(n_jobs)), dtype=np.int64)
    eq = sparse.csr_matrix((np.ones(n), (eq_rows, np.arange(n))), shape=(n_jobs, n))
    r_idx: list[npt.NDArray[np.int64]] = []
    c_idx: list[npt.NDArray[np.int64]] = []
    vals: list[FloatArray] = []
    for k, col in enumerate(columns):
        slots = np.arange(col.occ_from, min(col.occ_to, length))
        r_idx.append(col.row * length + slots)
        c_idx.append(np.full(len(slots), k))
        vals.append(np.full(len(slots), float(col.gpus)))
    ub = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))),
        shape=(n_regions * length, n),
    )
    return c, eq, ub


def _planner_schedules(
    world: World,
    jobs: Sequence[SimJob],
    prepared: Sequence[_Job],
    power: PowerRequest,
    gpu_watts: float,
    prices: FloatArray,
) -> list[list[tuple[int, int, int]]]:
    """(row, start column, option index) per job of the planner's search over all jobs at once
    with the true intensities: once plainly, once under the LP's prices. Schedules with a start
    off the oracle's columns are dropped."""
    from green_operator.planner import JobRequest, PlannerSettings, RegionForecast
    from green_operator.planner.prices import prefix
    from green_operator.planner.scheduler import Planner

    regions = [
        RegionForecast(r, world.capacity[r], world.gpu_model, world.origin, world.truth[k].tolist())
        for k, r in enumerate(world.regions)
    ]
    requests = [JobRequest(j.id, j.gpus, j.duration, j.submit_time, j.deadline, j.regions, power) for j in jobs]
    settings = PlannerSettings(
        slot=world.slot, horizon=world.slot * world.length, default_gpu_watts=gpu_watts, reserve_fraction=0.0
    )
    planner = Planner(requests, regions, [], world.origin, settings)
    everyone = [True] * len(requests)
    cum = prefix(prices)
    budget = max(30, len(requests) // 10)
    priced = planner.polish(planner.greedy(planner.slack_order, cum), everyone, cum)
    schedules = [
        planner.relocate_gainers(planner.search(everyone, relocate=False), everyone, budget),
        planner.relocate_gainers(priced, everyone, budget),
    ]
    out: list[list[tuple[int, int, int]]] = []
    for sched in schedules:
        picks: list[tuple[int, int, int]] = []
        for job, p in zip(prepared, sched.placements, strict=True):
            assert p is not None
            col = 0 if abs(p.start - (job.s0 + job.offset)) < 1e-6 else round(p.start) - job.s0
            opt_i = _option_index(job.options, p.option.limit_watts)
            if not (0 <= col < job.n_cols and opt_i is not None and world.regions[p.row] in jobs[job.index].regions):
                break
            picks.append((p.row, col, opt_i))
        if len(picks) == len(prepared):
            out.append(picks)
    return out
