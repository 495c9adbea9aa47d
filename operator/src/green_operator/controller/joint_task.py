"""The periodic joint re-plan, I/O side: a task beside the jobs' drivers.

Every ``replan_interval`` (once the ledger's watches have listed everything): take the ledger's
snapshot of deferred jobs, fetch the forecasts (the shared cache), run ``planner.joint`` in a
thread (it is CPU-bound and must not hold up the event loop), then book the moves that still hold
(``controller.joint.propose``) on the loop, the ledger's one writer. Each moved job adopts its move
at its next step through the same path as a move aside, and writes it to its status.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from green_operator.planner.joint import JointSettings, joint_replan
from green_operator.times import utcnow

from .joint import propose, snapshot

if TYPE_CHECKING:
    from .driver import Controller

log = logging.getLogger(__name__)


async def run(c: Controller, joint: JointSettings, interval: timedelta) -> None:
    """Until cancelled (operator shutdown)."""
    await c.ready.wait()
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await once(c, joint)
        except asyncio.CancelledError:
            raise
        except Exception:  # one failed re-plan must not end the task; the next one tries again
            log.exception("joint re-plan failed; the jobs keep their plans")


async def once(c: Controller, joint: JointSettings) -> list[str]:
    """One joint re-plan; returns the keys of the jobs moved."""
    settings = c.config.planner
    now = utcnow()
    snap = snapshot(c.ledger, now, settings.slot)
    if not snap.jobs:
        return []
    data = await c.forecasts.all(c.settings.regions.values(), now, c.ledger.nodes.values())
    regions = [d.forecast for d in data.values()]
    result = await asyncio.to_thread(
        joint_replan,
        snap.jobs,
        regions,
        snap.fixed,
        now,
        settings,
        budget_s=joint.budget.total_seconds(),
        max_moves=joint.max_moves,
        min_gain=joint.min_gain,
        keep_reserve=joint.keep_reserve,
    )
    capacity = {r.region: r.capacity_gpus for r in regions}
    moved = propose(c.ledger, snap, result.moved, capacity, utcnow(), settings.slot)
    c.metrics.record_joint(result.outcome, len(moved))
    log.info(
        "joint re-plan of %d deferred jobs: %s in %.2fs, expected %.0f -> %.0f g, %d moved",
        len(snap.jobs),
        result.outcome,
        result.seconds,
        result.grams_before,
        result.grams_after,
        len(moved),
    )
    return moved
