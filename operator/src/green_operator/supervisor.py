"""One asyncio task per GreenTrainingJob, started on its first watch event, stopped on deletion.

kopf daemons would do the same, but kopf guards every daemon with a finalizer: two extra writes
per job and a watch round-trip before the first decision, which is most of the latency in a burst
of creations. Nothing here needs a finalizer: the child Job goes with its owner through owner
references, and the task only has to stop when the object is gone. A task that fails is restarted
with backoff, as kopf would, so a transient API error never strands a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from .lifecycle import World, run_lifecycle
from .runtime import Runtime
from .status import TERMINAL_PHASES

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
SHUTDOWN_GRACE = 10.0


class Lifecycles:
    def __init__(self, rt: Runtime, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.rt = rt
        self.logger = logger
        self.bodies: dict[str, Mapping[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stops: dict[str, asyncio.Event] = {}
        self.world_of: Any = None

    def __len__(self) -> int:
        return sum(1 for t in self.tasks.values() if not t.done())

    def observe(self, key: str, body: Mapping[str, Any]) -> None:
        """Record the latest object; make sure a task drives it unless it has finished."""
        self.bodies[key] = body
        phase = (body.get("status") or {}).get("phase")
        task = self.tasks.get(key)
        if phase in TERMINAL_PHASES or (task is not None and not task.done()):
            return
        stop = self.stops[key] = asyncio.Event()
        self.tasks[key] = asyncio.create_task(self._supervise(key, stop), name=f"lifecycle {key}")

    def forget(self, key: str) -> None:
        stop = self.stops.pop(key, None)
        if stop is not None:
            stop.set()
        self.bodies.pop(key, None)
        task = self.tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()

    async def shutdown(self) -> None:
        for stop in self.stops.values():
            stop.set()
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
            for t in late:
                t.cancel()

    def world(self) -> World:
        assert self.world_of is not None
        result: World = self.world_of()
        return result

    async def _supervise(self, key: str, stop: asyncio.Event) -> None:
        attempt = 0
        logger = logging.LoggerAdapter(self.logger, {"job": key})
        while not stop.is_set():
            try:
                await run_lifecycle(self.rt, lambda: self.bodies[key], stop, self.world, logger)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                logger.exception("reconciling %s failed; retrying in %.0fs", key, delay)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
