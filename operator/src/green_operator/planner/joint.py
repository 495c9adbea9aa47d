"""Joint re-planning: every deferred (not yet started) job re-planned together, as one optimisation
within a time budget, the heuristic as the fallback. Pure: jobs + forecasts + capacity + clock in,
decisions out; the operator's periodic task (``controller.joint``) and the simulator both call it.

The method: a restricted MILP over candidate runs, by column generation (HiGHS through highspy).

1. The incumbent: each job at its previous plan where that still fits and meets its deadline, the
   others at their best place in the room left (``Planner.hold_previous`` / ``fill_in``). It is a
   feasible integer solution and the MILP starts from it, so the result is never worse.
2. Columns: a column is one unbroken run, (region, start, power limit), that finishes by the
   deadline and starts inside the forecast horizon (so never past the latest start). Each job
   starts with its incumbent run and, per region and limit, its ``_SEED_COLUMNS`` cheapest starts.
3. Column generation on the LP relaxation: the duals of the capacity rows price every GPU-slot; each
   round adds, per job, the run of least reduced cost over *all* its starts (prefix sums), while any
   is negative and half the budget is left.
4. The MILP over the columns generated, with the rest of the budget. Stability: a move costs
   ``min_gain`` of the job's current emissions, and at most ``max_moves`` jobs move.
   A late incumbent run costs a penalty far above any emissions, so deadlines come first.
5. Capacity per region and slot: the GPUs the fixed bookings leave. The reserve for jobs that
   cannot wait (``PlannerSettings.reserve_fraction``) is left out unless ``keep_reserve``: a job
   that cannot wait moves deferred jobs aside when it arrives (``plan_with_preemption``), and
   holding the reserve back here costs clean windows (docs/design/planner-joint.md has the
   figures). With it, never less than the incumbent uses there.

The budget holds: the column generation stops at half of the optimiser's share, rounding, the
greedy at the LP's prices and their polish stop at the clock (``until``), the MILP gets the rest
as its time limit, and the heuristic fallback runs only with half the budget left.
HiGHS is built silent (``new_highs``): nothing is printed to the operator's stdout.

Outcomes (``JointResult.outcome``): ``optimal`` (the MILP proved its optimum over the columns),
``timeout`` (the budget ran out: the best integer solution found is used), ``fallback`` (the solver
failed: the heuristic's joint search, its moves capped the same way).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .decisions import decision
from .grid import EPS, FloatArray, IntArray
from .model import Decision, JobRequest, PlannerSettings, RegionForecast, Reservation
from .placement import FreeGpus, Placement, _candidates, earliest_placement, placement_at
from .reasons import Risk
from .schedule import Schedule
from .scheduler import BudgetSpentError, Planner

OPTIMAL = "optimal"
IMPROVED = "improved"
TIMEOUT = "timeout"
FALLBACK = "fallback"
OUTCOMES = (OPTIMAL, IMPROVED, FALLBACK, TIMEOUT)

_OPTIMISER_SHARE = 0.9
"""Of the budget, what the LP, its roundings and the MILP may take; the heuristic gets the rest."""

_HEURISTIC_SHARE = 0.5
"""Of what the column generation leaves, what rounding, the greedy at the LP's prices and their
polish may take; the MILP gets the rest (and all of it when they finish early)."""

_SEED_COLUMNS = 1
"""Cheapest starts per job, region and limit in the first restricted LP."""
_MAX_ROUNDS = 30
_LATE_PENALTY = 3.0
"""A late run costs this many times the job's most expensive on-time run, plus that run."""


@dataclass(frozen=True)
class JointSettings:
    """The operator's periodic joint re-plan (config ``planner.jointReplan*``)."""

    budget: timedelta = timedelta(seconds=3)
    """Wall time per re-plan: the optimiser takes part of it, the heuristic fallback the rest."""
    max_moves: int = 100
    """Jobs moved per re-plan at most, so plans do not flap."""
    min_gain: float = 0.01
    """A job moves only when that saves more than this fraction of its expected emissions."""
    interval: timedelta | None = None
    """How often; None: every ``replan_interval``, as each deferred job's own re-plan."""
    keep_reserve: bool = False
    """Whether deferred jobs stay out of the urgent-job reserve (``reserve_fraction``) here too;
    see ``joint_replan``."""


@dataclass(frozen=True)
class JointResult:
    moved: list[Decision]
    """New decisions of the jobs that move (the others keep their plans)."""
    outcome: str
    grams_before: float
    """Expected emissions of the incumbent (the plans as they are)."""
    grams_after: float
    seconds: float
    rounds: int
    columns: int


@dataclass(frozen=True)
class _Column:
    job: int
    row: int
    col: int
    """Start index in the job's candidate matrix (0 = its earliest time)."""
    rank: int
    """Power option index in its region group."""
    group: int
    grams: float
    occ_from: int
    occ_to: int


@dataclass
class _Costs:
    """One job's run costs for every start, per region group and power option."""

    group: int
    rank: int
    rows: IntArray
    grams: FloatArray
    """(rows x starts) grams, inf where the run misses the deadline or leaves the horizon."""
    occ: int
    occ0: int


def joint_replan(
    jobs: Sequence[JobRequest],
    regions: Sequence[RegionForecast],
    reservations: Sequence[Reservation],
    now: datetime,
    settings: PlannerSettings,
    *,
    budget_s: float = 3.0,
    max_moves: int = 100,
    min_gain: float = 0.01,
    keep_reserve: bool = False,
) -> JointResult:
    """Re-plan ``jobs`` (deferred, each with its ``previous`` plan) together around the fixed
    ``reservations``. Returns the decisions of the jobs that move; see the module docstring."""
    t0 = time.perf_counter()
    if budget_s <= 0:
        raise ValueError("budget_s must be positive (seconds)")
    if max_moves < 0:
        raise ValueError("max_moves must be >= 0")
    if not 0 <= min_gain < 1:
        raise ValueError("min_gain must be a fraction in [0, 1)")
    if not jobs:
        return JointResult([], OPTIMAL, 0.0, 0.0, 0.0, 0, 0)
    # No reserve: the reserve keeps clean windows from filling up before urgent jobs arrive, but a
    # job that cannot wait moves deferred jobs aside when it arrives (``plan_with_preemption``),
    # and here every deferred job is placed with all the others in view. Measured on the capture
    # benchmark, the reserve held for a whole deferral costs most of what tight capacity loses.
    # A move must save ``min_gain`` of the job's emissions (the planner's hysteresis, in this call).
    reserve = settings.reserve_fraction if keep_reserve else 0.0
    planner = Planner(
        jobs, regions, reservations, now, replace(settings, reserve_fraction=reserve, hysteresis_fraction=min_gain)
    )
    incumbent = planner.new_schedule()
    # Late jobs keep their previous plans too where they still fit: a re-plan is no reason to move
    # them (moves are capped), and the optimiser may still bring them on time.
    rest = [i for i in planner.hold_previous(incumbent) if not _hold_late(planner, incumbent, i)]
    planner.fill_in(incumbent, rest)
    before = incumbent.grams
    failed = FALLBACK
    try:
        found = _optimise(planner, incumbent, t0 + budget_s * _OPTIMISER_SHARE, max_moves)
        failed = TIMEOUT  # if found is None: the LP did not solve within its share of the budget
    except (RuntimeError, ValueError, ImportError):  # the solver failed: the heuristic alone
        found = None
    rounds = ncols = 0
    # Which plan wins, and what made it: the optimiser's (it starts from the plans as they are,
    # so a tie with them is its answer too), else the heuristic's joint search.
    if found is not None:
        target, proved, rounds, ncols = found
        outcome = OPTIMAL if proved else IMPROVED
    else:
        target, outcome = incumbent, failed
    if found is None and failed == FALLBACK:  # on a timeout the budget is spent: plans stay
        # The heuristic's greedy passes cannot stop midway: its polish stops at the budget's end,
        # and none runs when less than half of the budget is left (the plans then stay).
        end = t0 + budget_s
        if end - time.perf_counter() > budget_s / 2:
            try:
                found_h = planner.polish(planner.greedy(planner.slack_order, None, end), [True] * len(jobs), None, end)
            except BudgetSpentError:
                found_h = incumbent
            heuristic = _capped(planner, incumbent, found_h, max_moves)
            if _rank(planner, heuristic, incumbent) < _rank(planner, target, incumbent):
                target = heuristic
    moved = [i for i in range(len(jobs)) if _moved(planner, i, target)]
    return JointResult(
        [_decision(planner, target, i) for i in moved],
        outcome,
        before,
        target.grams,
        time.perf_counter() - t0,
        rounds,
        ncols,
    )


def _hold_late(planner: Planner, s: Schedule, i: int) -> bool:
    """Put job ``i`` back at its previous plan, late or not, if that still fits."""
    prev, ctx, grid = planner.jobs[i].previous, planner.contexts[i], planner.grid
    if prev is None or prev.region not in grid.row:
        return False
    row = grid.row[prev.region]
    group = next((g for g in ctx.groups if row in g.rows), None)
    option = next((o for o in group.options if o.limit_watts == prev.power_limit_watts), None) if group else None
    if option is None:
        return False
    p = placement_at(grid, ctx, s.free, row, max(prev.start, ctx.earliest_time), option)
    if p is None:
        return False
    s.place(i, p)
    return True


def _moved(planner: Planner, i: int, s: Schedule) -> bool:
    p = s.placements[i]
    return p is not None and not planner.is_previous(i, p)


def _decision(planner: Planner, s: Schedule, i: int) -> Decision:
    job, ctx, grid = planner.jobs[i], planner.contexts[i], planner.grid
    p = s.placement(i)
    base = earliest_placement(grid, ctx, FreeGpus(grid.base_free.copy())) or p
    risk = Risk.NONE if s.meets(i) else Risk.NO_CAPACITY
    d = decision(
        job, ctx, grid, p, base, risk=risk, kept=False, now=planner.now, settings=planner.settings, profile=None
    )
    prev = job.previous
    if prev is None:
        return d
    # The baseline is the job's own ("running at submission"), not this call's.
    return replace(
        d,
        baseline_region=prev.baseline_region,
        baseline_start=prev.baseline_start,
        baseline_grams=prev.baseline_grams,
        baseline_intensity=prev.baseline_intensity,
    )


def _capped(planner: Planner, incumbent: Schedule, target: Schedule, max_moves: int) -> Schedule:
    """From the incumbent, the target's moves that fit one at a time, most emissions saved first,
    at most ``max_moves`` (a partial set of moves must fit on its own)."""
    s = incumbent.copy()
    gain = {
        i: incumbent.placement(i).grams - target.placement(i).grams
        for i in range(len(planner.jobs))
        if target.placements[i] is not None
        and incumbent.placements[i] is not None
        and incumbent.counted[i]
        and target.counted[i]
        and not _same(incumbent.placement(i), target.placement(i))
        and (target.meets(i) or not incumbent.meets(i))
    }
    order = sorted((i for i in gain if gain[i] > 0 or not incumbent.meets(i)), key=lambda i: (-gain[i], i))
    done: set[int] = set()
    changed = True
    while changed and len(done) < max_moves:
        changed = False
        for i in order:
            if i in done or len(done) >= max_moves:
                continue
            mark = s.mark()
            old = s.remove(i)
            p = target.placement(i)
            if s.fits(p.row, p.occupy_from, p.occupy_to, planner.contexts[i].gpus):
                s.place(i, p)
                done.add(i)
                changed = True
            else:
                s.rollback(mark)
                assert s.placements[i] == old
    return s


def _same(a: Placement, b: Placement) -> bool:
    return a.row == b.row and abs(a.start - b.start) < EPS and a.option == b.option


def _costs(planner: Planner, i: int) -> list[_Costs]:
    grid, ctx = planner.grid, planner.contexts[i]
    unlimited = FreeGpus(np.full((len(grid.names), grid.length), np.iinfo(np.int32).max, dtype=np.int64))
    groups = {id(g): k for k, g in enumerate(ctx.groups)}
    return [
        _Costs(groups[id(c.group)], c.option_rank, c.group.rows, c.grams, c.occ, c.occ0)
        for c in _candidates(grid, ctx, unlimited, None, None, False)
    ]


def _column(planner: Planner, i: int, c: _Costs, a: int, col: int) -> _Column:
    s0 = planner.contexts[i].s0
    length = c.occ0 if col == 0 else c.occ
    return _Column(i, int(c.rows[a]), col, c.rank, c.group, float(c.grams[a, col]), s0 + col, s0 + col + length)


def _incumbent_column(planner: Planner, i: int, p: Placement, late_cost: float) -> _Column:
    ctx = planner.contexts[i]
    group = next(k for k, g in enumerate(ctx.groups) if p.row in g.rows)
    rank = ctx.groups[group].options.index(p.option)
    col = 0 if p.occupy_from == ctx.s0 and abs(p.start - (ctx.s0 + ctx.offset)) < EPS else p.occupy_from - ctx.s0
    meets = p.start + ctx.duration * p.option.slowdown <= ctx.deadline + EPS
    return _Column(i, p.row, col, rank, group, p.grams + (0.0 if meets else late_cost), p.occupy_from, p.occupy_to)


def new_highs() -> Any:
    """A silent HiGHS instance. ``highspy.Highs()`` prints its banner to stdout as it is built
    (its Python wrapper sets up callbacks with logging still on), before any option can be set, so
    the core class is built directly (the wrapper adds only callbacks and threaded solves, neither
    used here) and logging is off before anything runs."""
    import highspy

    h = highspy._Highs()  # type: ignore[attr-defined]  # the stub leaves the core class out
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


class _Model:
    """The restricted master: one convexity row per job, one capacity row per (region, slot)."""

    def __init__(self, planner: Planner, incumbent: Schedule, max_moves: int) -> None:
        import highspy

        self.hs = highspy
        self.planner = planner
        grid = planner.grid
        n = len(planner.jobs)
        self.jobs = [i for i in range(n) if incumbent.counted[i]]
        self.costs = {i: _costs(planner, i) for i in self.jobs}
        self.current: dict[int, _Column] = {}
        self.move_cost = np.zeros(n)
        self.late: dict[int, float] = {}
        for i in self.jobs:
            worst = [float(k.grams[np.isfinite(k.grams)].max()) for k in self.costs[i] if np.isfinite(k.grams).any()]
            self.late[i] = _LATE_PENALTY * (max(worst) if worst else 1.0) + 1.0
            p = incumbent.placement(i)
            self.current[i] = _incumbent_column(planner, i, p, self.late[i])
            if planner.jobs[i].previous is not None and planner.is_previous(i, p):
                self.move_cost[i] = planner.settings.hysteresis_fraction * p.grams
        # Capacity: fixed bookings, less the reserve, never below what the incumbent uses.
        width = grid.length
        use = np.zeros((len(grid.names), width), dtype=np.int64)
        for i in self.jobs:
            c = self.current[i]
            use[c.row, c.occ_from : c.occ_to] += planner.contexts[i].gpus
        room = grid.base_free[:, :width].copy()
        if planner.reserve is not None:
            reserve = planner.reserve[:, : min(width, planner.reserve.shape[1])]
            room[:, : reserve.shape[1]] -= reserve
        self.cap = np.maximum(np.maximum(room, 0), use)
        self.width = width
        self.columns: list[_Column] = []
        self.stale = True
        """Columns were added since the last LP solve."""
        self.x: FloatArray = np.zeros(0)
        """The last optimal LP solution (columns added since count as 0)."""
        self.duals: FloatArray = np.zeros(0)
        self.seen: set[tuple[int, int, int, int, int]] = set()
        self.h = new_highs()
        inf = highspy.kHighsInf
        # Rows: jobs (== 1), then capacity (<= cap) per region and slot, then the move cap.
        self.job_row = {i: k for k, i in enumerate(self.jobs)}
        nrows = len(self.jobs) + len(grid.names) * width
        lower = np.concatenate([np.ones(len(self.jobs)), np.full(len(grid.names) * width, -inf)])
        upper = np.concatenate([np.ones(len(self.jobs)), self.cap.reshape(-1).astype(np.float64)])
        self.movers = [i for i in self.jobs if self.move_cost[i] > 0]
        self.mover_set = frozenset(self.movers)
        self.stay_row = -1
        if len(self.movers) > max_moves:  # at least len(movers) - max_moves stay where they are
            self.stay_row = nrows
            lower = np.append(lower, float(len(self.movers) - max_moves))
            upper = np.append(upper, inf)
        self.h.addRows(len(lower), lower, upper, 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        self.add([self.current[i] for i in self.jobs])
        seed: list[_Column] = []
        for i in self.jobs:
            for costs in self.costs[i]:
                for a in range(len(costs.rows)):
                    grams = costs.grams[a]
                    finite = np.flatnonzero(np.isfinite(grams))
                    if finite.size == 0:
                        continue
                    cheapest = finite[np.argsort(grams[finite], kind="stable")[:_SEED_COLUMNS]]
                    seed += [_column(planner, i, costs, a, int(col)) for col in cheapest]
        self.add(seed)

    def _key(self, c: _Column) -> tuple[int, int, int, int, int]:
        return (c.job, c.row, c.col, c.rank, c.group)

    def cost(self, c: _Column) -> float:
        same = c == self.current[c.job] or self._key(c) == self._key(self.current[c.job])
        return c.grams + (0.0 if same else float(self.move_cost[c.job]))

    def add(self, cols: Sequence[_Column]) -> int:
        fresh = []
        for c in cols:
            k = self._key(c)
            if k not in self.seen:
                self.seen.add(k)
                fresh.append(c)
        if not fresh:
            return 0
        starts, index, value = [0], [], []
        gpus = self.planner.contexts
        for c in fresh:
            rows = [self.job_row[c.job]]
            base = len(self.jobs) + c.row * self.width
            rows += [base + t for t in range(c.occ_from, min(c.occ_to, self.width))]
            vals = [1.0] + [float(gpus[c.job].gpus)] * (len(rows) - 1)
            if self.stay_row >= 0 and c.job in self.mover_set and self.cost(c) == c.grams:
                rows.append(self.stay_row)
                vals.append(1.0)
            index += rows
            value += vals
            starts.append(len(index))
        costs = np.array([self.cost(c) for c in fresh])
        self.h.addCols(
            len(fresh),
            costs,
            np.zeros(len(fresh)),
            np.ones(len(fresh)),
            len(index),
            np.array(starts[:-1], dtype=np.int32),
            np.array(index, dtype=np.int32),
            np.array(value, dtype=np.float64),
        )
        self.columns += fresh
        return len(fresh)

    def solve_lp(self, deadline: float) -> bool:
        self.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.01))
        self.h.run()
        self.h.setOptionValue("presolve", "off")  # later solves start from this basis
        ok = bool(self.h.getModelStatus() == self.hs.HighsModelStatus.kOptimal)
        self.stale = not ok
        if ok:  # kept: a later solve cut short by the budget leaves no usable solution
            sol = self.h.getSolution()
            self.x = np.asarray(sol.col_value).copy()
            self.duals = np.asarray(sol.row_dual).copy()
        return ok

    def price(self) -> list[_Column]:
        """Per job, its least reduced-cost run over every start, when negative."""
        duals = self.duals
        mu = duals[: len(self.jobs)]
        pcum = self.prices_cum()
        stay = float(duals[self.stay_row]) if self.stay_row >= 0 else 0.0
        out: list[_Column] = []
        for i in self.jobs:
            ctx = self.planner.contexts[i]
            best: tuple[float, _Column] | None = None
            for c in self.costs[i]:
                n = c.grams.shape[1]
                s0 = ctx.s0
                hi = min(s0 + n + c.occ, pcum.shape[1] - 1)
                cols = np.arange(n)
                a_idx = np.minimum(s0 + cols, hi)
                b_idx = np.minimum(s0 + cols + c.occ, hi)
                pen = pcum[c.rows][:, b_idx] - pcum[c.rows][:, a_idx]
                pen[:, 0] = pcum[c.rows, min(s0 + c.occ0, hi)] - pcum[c.rows, min(s0, hi)]
                red = c.grams + ctx.gpus * pen + self.move_cost[i]
                a, col = np.unravel_index(int(np.argmin(red)), red.shape)
                r = float(red[a, col])
                if math.isfinite(r) and (best is None or r < best[0]):
                    best = (r, _column(self.planner, i, c, int(a), int(col)))
            if best is not None:
                reduced = best[0] - float(mu[self.job_row[i]]) - (stay if self.cost(best[1]) == best[1].grams else 0.0)
                if reduced < -1e-6 * max(abs(best[0]), 1.0):
                    out.append(best[1])
        return out

    def placement(self, k: int) -> Placement:
        c = self.columns[k]
        planner = self.planner
        ctx = planner.contexts[c.job]
        option = ctx.groups[c.group].options[c.rank]
        start = ctx.earliest_time if c.col == 0 else planner.grid.to_time(ctx.s0 + c.col)
        p = placement_at(planner.grid, ctx, None, c.row, start, option)
        assert p is not None
        return p

    def prices_cum(self) -> FloatArray:
        """The capacity rows' duals as prefix sums over slots, per region (the greedy's prices)."""
        duals = self.duals
        rows, width = self.cap.shape
        pi = np.maximum(-duals[len(self.jobs) : len(self.jobs) + rows * width], 0.0).reshape(rows, width)
        cum = np.zeros((rows, width + 1))
        np.cumsum(pi, axis=1, out=cum[:, 1:])
        return cum

    def solve_mip(self, deadline: float, start_from: Schedule) -> tuple[list[int], bool] | None:
        """The chosen column per job (index into ``columns``) and whether optimality was proved;
        started from ``start_from`` where its runs are columns (else from the incumbent)."""
        hs = self.hs
        runs = {i: _incumbent_column(self.planner, i, start_from.placement(i), self.late[i]) for i in self.jobs}
        self.add(list(runs.values()))
        wanted = {i: self._key(c) for i, c in runs.items()}
        ncol = len(self.columns)
        self.h.changeColsIntegrality(ncol, np.arange(ncol, dtype=np.int32), np.array([hs.HighsVarType.kInteger] * ncol))
        start = hs.HighsSolution()
        cur = set(wanted.values())
        start.col_value = [1.0 if self._key(c) in cur else 0.0 for c in self.columns]
        start.value_valid = True
        self.h.setSolution(start)
        self.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.05))
        self.h.setOptionValue("mip_rel_gap", 1e-4)
        self.h.run()
        status = self.h.getModelStatus()
        x = np.asarray(self.h.getSolution().col_value)
        if x.size != ncol or self.h.getInfo().primal_solution_status != 2:
            return None
        chosen: dict[int, tuple[float, int]] = {}
        for k, c in enumerate(self.columns):
            if c.job not in chosen or x[k] > chosen[c.job][0]:
                chosen[c.job] = (float(x[k]), k)
        if any(v < 0.5 for v, _ in chosen.values()):
            return None
        return [chosen[i][1] for i in self.jobs], bool(status == hs.HighsModelStatus.kOptimal)


def _rank(planner: Planner, s: Schedule, incumbent: Schedule) -> tuple[int, float]:
    """Late jobs first, then emissions plus the cost of the moves (stability)."""
    h = planner.settings.hysteresis_fraction  # the joint re-plan's min_gain
    moves = sum(
        h * incumbent.placement(i).grams
        for i in range(len(planner.jobs))
        if planner.jobs[i].previous is not None
        and s.placements[i] is not None
        and incumbent.placements[i] is not None
        and not _same(s.placement(i), incumbent.placement(i))
    )
    return (s.misses, s.grams + moves)


def _rounded(planner: Planner, model: _Model, x: FloatArray, until: float) -> Schedule:
    """LP rounding and repair: most certain jobs first (then least slack), each at its likeliest
    run if that still fits, else at its best place in the room left, else as early as it can.
    Raises ``BudgetSpentError`` past ``until``."""
    likeliest: dict[int, tuple[float, int]] = {}
    for k, c in enumerate(model.columns):
        if c.job not in likeliest or x[k] > likeliest[c.job][0]:
            likeliest[c.job] = (float(x[k]), k)
    order = sorted(likeliest, key=lambda i: (-likeliest[i][0], planner.slack[i], i))
    s = planner.new_schedule()
    find = planner.finder(None)
    for i in order:
        p = model.placement(likeliest[i][1])
        if s.fits(p.row, p.occupy_from, p.occupy_to, planner.contexts[i].gpus):
            s.place(i, p)
            continue
        if time.perf_counter() > until:
            raise BudgetSpentError
        q = find(s, i)
        if q is None:
            planner.place_earliest(s, i)
        else:
            s.place(i, q)
    for i in range(len(planner.jobs)):
        if s.placements[i] is None:
            planner.place_earliest(s, i)
    return s


def _optimise(
    planner: Planner, incumbent: Schedule, deadline: float, max_moves: int
) -> tuple[Schedule, bool, int, int] | None:
    """Column generation on the LP, then the best of: the incumbent, the LP rounded and repaired,
    the greedy at the LP's prices (both polished), and the MILP over the columns started from the
    best of those, with what is left of the budget. Moves capped at the end."""
    model = _Model(planner, incumbent, max_moves)
    t_start = time.perf_counter()
    lp_until = t_start + (deadline - t_start) * 0.5
    rounds = 0
    solved = False
    while rounds < _MAX_ROUNDS and time.perf_counter() < lp_until:
        if not model.solve_lp(lp_until if solved else deadline):
            break
        solved = True
        rounds += 1
        model.stale = model.add(model.price()) > 0
        if not model.stale:
            break
    candidates = [incumbent]
    movable = [True] * len(planner.jobs)
    if solved:
        x = np.zeros(len(model.columns))
        x[: model.x.size] = model.x
        prices = model.prices_cum()
        # Each step stops at the clock: the MILP after them gets at least its share of what is left.
        until = time.perf_counter() + (deadline - time.perf_counter()) * _HEURISTIC_SHARE
        try:
            candidates.append(planner.polish(_rounded(planner, model, x, until), movable, None, until))
            candidates.append(
                planner.polish(planner.greedy(planner.slack_order, prices, until), movable, prices, until)
            )
        except BudgetSpentError:
            pass
    best = min(candidates, key=lambda c: _rank(planner, c, incumbent))
    proved = False
    if time.perf_counter() < deadline:
        found = model.solve_mip(deadline, best)
        if found is not None:
            picks, proved = found
            mip = planner.new_schedule()
            for k in picks:
                mip.place(model.columns[k].job, model.placement(k))
            for i in range(len(planner.jobs)):
                if mip.placements[i] is None:  # too big for every region: as the incumbent has it
                    mip.place(i, incumbent.placement(i), counted=False)
            if not bool(np.any(mip.free.array < 0)) and _rank(planner, mip, incumbent) < _rank(
                planner, best, incumbent
            ):
                best = mip
    moves = sum(
        1
        for i in range(len(planner.jobs))
        if best.placements[i] is not None and not _same(best.placement(i), incumbent.placement(i))
    )
    if moves > max_moves:
        best = _capped(planner, incumbent, best, max_moves)
    if best is incumbent and not solved:
        return None  # the optimiser produced nothing within its share of the budget
    return best, proved, rounds, len(model.columns)
