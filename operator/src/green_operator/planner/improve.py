"""Local search on a schedule:

- ``repair``: a late job meets its deadline in a window cleared by moving other jobs elsewhere;
- ``improve``: single jobs move to cheaper placements while that gains;
- ``relocate``: a job moves into a cheaper place that others hold, they moving aside, when the
  schedule as a whole emits less.

Every step keeps each on-time job on time, so none ever adds a deadline miss, and every failed
attempt is rolled back exactly (``Schedule.mark`` / ``rollback``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from .grid import EPS, IntArray
from .placement import JobContext, Placement, placement_at
from .schedule import Schedule

Finder = Callable[[Schedule, int], Placement | None]
"""The best on-time placement for job i among the GPUs free in the schedule (None: none)."""

_REPAIR_WINDOWS = (8, 3)
"""Windows tried for a late job, then for each job moved out of its way (which may in turn move
others out of its own way: two levels), fewest GPU-slots to clear first."""


def slack_slots(ctx: JobContext) -> float:
    """Slots between the earliest start and the latest start at the default limit."""
    return ctx.deadline - ctx.duration - (ctx.s0 + ctx.offset)


def _region_count(ctx: JobContext) -> int:
    return sum(len(g.rows) for g in ctx.groups)


def _windows(s: Schedule, i: int, movable: Callable[[int], bool]) -> list[tuple[int, int, int, int]]:
    """(GPU-slots short, column, row, group index) of each window in which job ``i`` would meet its
    deadline at its fastest limit if movable on-time jobs made room; fewest GPU-slots short first."""
    ctx, grid = s.contexts[i], s.grid
    rows_needed = sorted({int(r) for g in ctx.groups for r in g.rows})
    spans = []
    for gi, group in enumerate(ctx.groups):
        x = ctx.duration * group.options[0].slowdown
        hi = math.floor(ctx.deadline - x + EPS) - ctx.s0
        c0_ok = ctx.offset + x <= ctx.deadline - ctx.s0 + EPS
        n = max(hi + 1, 1 if c0_ok else 0)
        if n > 0:
            spans.append((gi, n, math.ceil(x - EPS), math.ceil(ctx.offset + x - EPS), c0_ok))
    if not spans:
        return []
    width = max(n + max(occ, occ0) + 1 for _, n, occ, occ0, _ in spans)
    if ctx.s0 + width > grid.length:
        grid.ensure(ctx.s0 + width, [])
    s.free.fit(grid)
    free = s.free.array
    # GPUs that movable on-time jobs hold per region and slot: what moving them could give back.
    give = np.zeros((len(free), free.shape[1] + 1), dtype=np.int64)
    holders = [
        j for j in (int(k) for k in np.flatnonzero(np.isin(s.rows, rows_needed) & s.on_time)) if j != i and movable(j)
    ]
    if holders:
        h = np.array(holders)
        gpus = np.array([s.contexts[j].gpus for j in holders], dtype=np.int64)
        np.add.at(give, (s.rows[h], s.occ_from[h]), gpus)
        np.add.at(give, (s.rows[h], s.occ_to[h]), -gpus)
    give = np.cumsum(give, axis=1)[:, :-1]
    found: list[tuple[int, int, int, int]] = []
    lo, hi_slot = ctx.s0, ctx.s0 + width
    for gi, n, occ, occ0, c0_ok in spans:
        for row in (int(r) for r in ctx.groups[gi].rows):
            have = free[row, lo:hi_slot]
            short = np.concatenate([[0], np.cumsum(np.maximum(ctx.gpus - have, 0))])
            impossible = np.concatenate([[0], np.cumsum(have + give[row, lo:hi_slot] < ctx.gpus)])
            limit = min(n, max(int(grid.start_limit[row]) - ctx.s0, 1))
            cols = np.arange(limit)
            ends = cols + np.where(cols == 0, occ0, occ)
            ok = impossible[ends] == impossible[cols]
            if not c0_ok:
                ok[0] = False
            need = short[ends] - short[cols]
            found.extend((int(need[c]), int(c), row, gi) for c in np.flatnonzero(ok))
    found.sort(key=lambda w: (w[0], w[1]))
    return found


def _cost(s: Schedule, i: int, col: int, row: int, gi: int) -> float:
    """Emissions of job ``i`` in a window from ``_windows``."""
    ctx = s.contexts[i]
    opt = ctx.groups[gi].options[0]
    start = ctx.s0 + (ctx.offset if col == 0 else col)
    return ctx.gpus * opt.watts / 1000.0 * s.grid.integral(row, start, ctx.duration * opt.slowdown)


def _covers(s: Schedule, j: int, slots: IntArray) -> bool:
    return bool(np.any((slots >= s.occ_from[j]) & (slots < s.occ_to[j])))


def _eject(
    s: Schedule, i: int, row: int, a: int, b: int, movable: Callable[[int], bool], *, outside_reserve: bool = False
) -> list[int]:
    """Take movable on-time jobs out of ``[a, b)`` in ``row`` until job ``i`` fits there: each
    time the most flexible job (most regions, then most slack) that holds a slot still short of
    GPUs. Returns the jobs taken out (the window may still be short if they ran out)."""
    gpus = s.contexts[i].gpus
    blockers = sorted(
        (j for j in s.overlapping(row, a, b) if j != i and movable(j) and s.meets(j)),
        key=lambda j: (-_region_count(s.contexts[j]), -slack_slots(s.contexts[j]), j),
    )
    ejected: list[int] = []
    while not s.fits(row, a, b, gpus, outside_reserve=outside_reserve):
        free = s.room() if outside_reserve else s.free
        short = np.flatnonzero(free.array[row, a:b] < gpus) + a
        j = next((j for j in blockers if _covers(s, j, short)), None)
        if j is None:
            break
        blockers.remove(j)
        s.remove(j)
        ejected.append(j)
    return ejected


def _insert(
    s: Schedule,
    i: int,
    movable: Callable[[int], bool],
    find: Finder,
    frozen: frozenset[int],
    level: int,
    *,
    cheapest: bool = False,
) -> bool:
    """Place unplaced job ``i`` on time: where room is free, else in a window cleared by moving
    movable jobs, each put back on time the same way one level down. The first window that works,
    or with ``cheapest`` the one that leaves the least emissions. On failure the schedule is as it
    was."""
    p = find(s, i)
    if p is not None:
        s.place(i, p)
        return True
    if level >= len(_REPAIR_WINDOWS):
        return False
    ctx, grid = s.contexts[i], s.grid
    frozen = frozen | {i}

    def may_move(j: int) -> bool:
        return j not in frozen and movable(j)

    def attempt(col: int, row: int, gi: int) -> bool:
        opt = ctx.groups[gi].options[0]
        x = ctx.duration * opt.slowdown
        a = ctx.s0 + col
        b = a + (math.ceil(ctx.offset + x - EPS) if col == 0 else math.ceil(x - EPS))
        ejected = _eject(s, i, row, a, b, may_move)
        start = ctx.earliest_time if col == 0 else grid.origin + grid.slot * a
        target = placement_at(grid, ctx, s.free, row, start, opt) if s.fits(row, a, b, ctx.gpus) else None
        if target is None:
            return False
        s.place(i, target)
        ejected.sort(key=lambda j: (slack_slots(s.contexts[j]), j))
        return all(_insert(s, j, movable, find, frozen, level + 1) for j in ejected)

    windows = [(col, row, gi) for _, col, row, gi in _windows(s, i, may_move)]
    tries = windows[: _REPAIR_WINDOWS[level]]
    if cheapest:  # also the cheapest windows for the job itself, however crowded
        tries += [w for w in sorted(windows, key=lambda w: _cost(s, i, *w))[: _REPAIR_WINDOWS[level]] if w not in tries]
    best: tuple[float, int, int, int] | None = None
    for col, row, gi in tries:
        mark = s.mark()
        if attempt(col, row, gi):
            if not cheapest:
                return True
            grams = s.grams
            if best is None or grams < best[0]:
                best = (grams, col, row, gi)
        s.rollback(mark)
    if best is None:
        return False
    done = attempt(*best[1:])
    assert done
    return True


def repair(s: Schedule, i: int, movable: Sequence[bool], find: Finder) -> bool:
    """Try to make late job ``i`` meet its deadline: a free window if one opened, else a window
    cleared by moving movable on-time jobs elsewhere (each still on time). True when it worked;
    otherwise the schedule is unchanged."""
    ctx = s.contexts[i]
    if ctx.gpus > ctx.max_region_capacity:
        return False
    mark = s.mark()
    s.remove(i)
    if _insert(s, i, lambda j: movable[j], find, frozenset(), 0, cheapest=True):
        return True
    s.rollback(mark)
    return False


def improve(
    s: Schedule,
    order: Sequence[int],
    find: Finder,
    threshold: Callable[[int, Placement], float],
    *,
    passes: int,
    until: float = math.inf,
) -> int:
    """Move single on-time jobs to cheaper placements: each job in ``order`` is taken out and put
    back at its best placement when that cuts its emissions by more than ``threshold(i, current)``
    (a fraction). Late jobs take any on-time placement that opened. Stops at ``until``
    (``time.perf_counter``), the schedule as good as it got. Returns the number of moves."""
    moves = 0
    for _ in range(passes):
        changed = 0
        for i in order:
            if until < math.inf and time.perf_counter() > until:
                return moves + changed
            if not s.counted[i]:
                continue
            was_on_time = s.meets(i)
            cur = s.remove(i)
            p = find(s, i)
            if p is not None and (not was_on_time or p.grams < cur.grams * (1 - threshold(i, cur)) - 1e-12):
                s.place(i, p)
                s.kept[i] = False
                changed += 1
            else:
                s.place(i, cur)
                if p is not None and was_on_time and p.grams < cur.grams * (1 - 1e-9) and threshold(i, cur) > 1e-9:
                    s.kept[i] = True
        moves += changed
        if not changed:
            break
    return moves


def relocate(
    s: Schedule, i: int, targets: Sequence[Placement], movable: Sequence[bool], find: Finder, *, margin: float
) -> bool:
    """Move on-time job ``i`` to one of ``targets`` (placements that may be taken by other jobs
    now), moving the movable jobs in the way to their best on-time placements. Takes the target
    that lowers the schedule's emissions most, by more than ``margin`` grams; True if it moved."""
    if not s.meets(i):
        return False
    before = s.grams
    best: tuple[float, int] | None = None
    for k, target in enumerate(targets):
        mark = s.mark()
        if _relocated(s, i, target, movable, find):
            gain = before - s.grams
            if gain > margin and (best is None or gain > best[0]):
                best = (gain, k)
        s.rollback(mark)
    if best is None:
        return False
    moved = _relocated(s, i, targets[best[1]], movable, find)
    assert moved
    return True


def _relocated(s: Schedule, i: int, target: Placement, movable: Sequence[bool], find: Finder) -> bool:
    """Job ``i`` at ``target`` with the jobs in the way put back on time elsewhere; False (the
    schedule then half-changed: roll it back) when that fails."""
    s.remove(i)
    may_move: Callable[[int], bool] = lambda j: j != i and movable[j]  # noqa: E731
    # A move to cut emissions stays out of the reserve (that is for deadlines).
    ejected = _eject(s, i, target.row, target.occupy_from, target.occupy_to, may_move, outside_reserve=True)
    if not s.fits(target.row, target.occupy_from, target.occupy_to, s.contexts[i].gpus, outside_reserve=True):
        return False
    s.place(i, target)
    ejected.sort(key=lambda j: (slack_slots(s.contexts[j]), j))
    return all(_insert(s, j, lambda k: movable[k], find, frozenset({i}), 1) for j in ejected)


def cheaper_windows(s: Schedule, i: int, movable: Sequence[bool], per_row: int) -> list[Placement]:
    """Placements cheaper than job ``i``'s current one that movable jobs could make room for:
    per allowed region, the ``per_row`` with the fewest GPU-slots short, cheapest on ties."""
    ctx, grid = s.contexts[i], s.grid
    cur = s.placement(i)
    by_row: dict[int, list[tuple[int, float, Placement]]] = {}
    for short, col, row, gi in _windows(s, i, lambda j: j != i and movable[j]):
        if len(by_row.setdefault(row, [])) >= 4 * per_row:
            continue
        opt = ctx.groups[gi].options[0]
        start = ctx.earliest_time if col == 0 else grid.origin + grid.slot * (ctx.s0 + col)
        p = placement_at(grid, ctx, None, row, start, opt)
        if p is not None and p.grams < cur.grams:
            by_row[row].append((short, p.grams, p))
    out: list[Placement] = []
    for options in by_row.values():
        out.extend(p for _, _, p in sorted(options, key=lambda o: (o[0], o[1]))[:per_row])
    return out
