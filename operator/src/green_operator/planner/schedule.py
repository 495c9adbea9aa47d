"""A mutable schedule: one placement per job over the free GPUs that are left.

The search in ``improve`` moves jobs around in a schedule; every move goes through ``place`` and
``remove`` so the free-GPU array always matches the placements.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .grid import EPS, IntArray, SlotGrid
from .placement import FreeGpus, JobContext, Placement


def meets_deadline(ctx: JobContext, p: Placement) -> bool:
    return p.start + ctx.duration * p.option.slowdown <= ctx.deadline + EPS


class Schedule:
    """Placements of a planning call's jobs; ``None`` until placed. A placement of a job bigger
    than every allowed region is recorded but takes no GPUs (``counted`` False)."""

    def __init__(self, grid: SlotGrid, contexts: Sequence[JobContext], reserve: IntArray | None = None) -> None:
        self.grid = grid
        self.contexts = contexts
        self.reserve = reserve
        """GPUs per region and slot that only jobs which cannot wait may take (None: no reserve)."""
        n = len(contexts)
        self.free = FreeGpus(grid.base_free.copy())
        self.placements: list[Placement | None] = [None] * n
        self.counted = [False] * n
        self.on_time = np.zeros(n, dtype=bool)
        """Placed, holding its GPUs and finishing by its deadline (see ``meets``)."""
        self.kept = [False] * n
        """The job keeps its previous plan although a slightly better one exists (hysteresis)."""
        # Where each counted job sits, for finding the jobs that overlap a window.
        self.rows: IntArray = np.zeros(n, dtype=np.int64)
        self.occ_from: IntArray = np.zeros(n, dtype=np.int64)
        self.occ_to: IntArray = np.zeros(n, dtype=np.int64)
        self._journal: list[tuple[int, Placement | None, bool]] = []
        """(job, placement before, counted before) of every change, for ``rollback``."""

    def copy(self) -> Schedule:
        other = Schedule.__new__(Schedule)
        other.grid = self.grid
        other.contexts = self.contexts
        other.reserve = self.reserve
        other.free = self.free.copy()
        other.placements = list(self.placements)
        other.counted = list(self.counted)
        other.kept = list(self.kept)
        other.on_time = self.on_time.copy()
        other.rows = self.rows.copy()
        other.occ_from = self.occ_from.copy()
        other.occ_to = self.occ_to.copy()
        other._journal = []
        return other

    def mark(self) -> int:
        """A point to ``rollback`` to."""
        return len(self._journal)

    def rollback(self, mark: int) -> None:
        """Undo every place and remove since ``mark``, newest first."""
        while len(self._journal) > mark:
            i, before, counted = self._journal.pop()
            depth = len(self._journal)
            if self.placements[i] is not None:
                self.remove(i)
            if before is not None:
                self.place(i, before, counted=counted)
            del self._journal[depth:]  # the undo's own entries

    def place(self, i: int, p: Placement, *, counted: bool = True) -> None:
        assert self.placements[i] is None, f"job {i} is already placed"
        self._journal.append((i, None, False))
        self.placements[i] = p
        self.counted[i] = counted
        self.on_time[i] = counted and meets_deadline(self.contexts[i], p)
        if counted:
            self.free.fit(self.grid)
            self.free.take(p, self.contexts[i].gpus)
            self.rows[i], self.occ_from[i], self.occ_to[i] = p.row, p.occupy_from, p.occupy_to

    def remove(self, i: int) -> Placement:
        p = self.placements[i]
        assert p is not None, f"job {i} is not placed"
        self._journal.append((i, p, self.counted[i]))
        if self.counted[i]:
            self.free.fit(self.grid)
            self.free.array[p.row, p.occupy_from : p.occupy_to] += self.contexts[i].gpus
            self.occ_to[i] = self.occ_from[i]  # an empty span overlaps nothing
        self.placements[i] = None
        self.counted[i] = False
        self.on_time[i] = False
        return p

    def placement(self, i: int) -> Placement:
        p = self.placements[i]
        assert p is not None, f"job {i} is not placed"
        return p

    def meets(self, i: int) -> bool:
        """Placed, holding its GPUs, and finishing by the deadline."""
        return bool(self.on_time[i])

    def fits(self, row: int, start: int, end: int, gpus: int, *, outside_reserve: bool = False) -> bool:
        free = self.room() if outside_reserve else self.free
        free.fit(self.grid)
        return bool(np.all(free.array[row, start:end] >= gpus))

    def room(self) -> FreeGpus:
        """The free GPUs outside the reserve. A slot that nothing else uses is all room: a job
        alone there can still be moved aside (or would run there anyway, carbon-blind), so holding
        GPUs back from it would only cost small clusters their clean windows."""
        self.free.fit(self.grid)
        if self.reserve is None:
            return self.free
        free = self.free.array
        width = free.shape[1]
        if self.reserve.shape[1] < width:
            extra = np.repeat(self.reserve[:, -1:], width - self.reserve.shape[1], axis=1)
            self.reserve = np.concatenate([self.reserve, extra], axis=1)
        idle = free >= self.grid.capacity[:, None]
        return FreeGpus(np.where(idle, free, free - self.reserve[:, :width]))

    def overlapping(self, row: int, start: int, end: int) -> list[int]:
        """Counted jobs that occupy any slot of ``[start, end)`` in ``row``."""
        hit = (self.rows == row) & (self.occ_from < end) & (self.occ_to > start)
        return [int(j) for j in np.flatnonzero(hit)]

    @property
    def misses(self) -> int:
        return len(self.contexts) - int(self.on_time.sum())

    @property
    def grams(self) -> float:
        return sum(p.grams for p in self.placements if p is not None)
