"""Posts Kubernetes Events off the decision's path: each from its own task, a few at a time, the
same event again bumping the Event already posted (api/events.py decides which write)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

from green_operator.api.events import BumpEvent, CreateEvent, EventCorrelator, EventKey, ObjectRef
from green_operator.times import utcnow

from .kube import AsyncKube, KubeApiError, q

log = logging.getLogger(__name__)

CONCURRENT_POSTS = 4
"""Events wait rather than compete with decisions for the apiserver in a burst."""


class EventRecorder:
    def __init__(self, kube: AsyncKube, concurrent: int = CONCURRENT_POSTS) -> None:
        self.kube = kube
        self.correlator = EventCorrelator()
        self._slots = asyncio.Semaphore(concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._bumping: dict[EventKey, bool] = {}
        """Events with a bump queued or in flight, and whether it must be sent again."""
        self._open = asyncio.Event()
        self._open.set()

    def hold(self, held: bool) -> None:
        """Hold Events back (a burst's first decisions want the apiserver), or let them go. Each
        keeps the time it was recorded at."""
        if held:
            self._open.clear()
        else:
            self._open.set()

    def post(self, body: Mapping[str, Any], reason: str, message: str, warning: bool) -> None:
        """An Event on the object `body` (with apiVersion, kind and metadata)."""
        self.post_on(ObjectRef.of(body), reason, message, warning)

    def post_on(self, ref: ObjectRef, reason: str, message: str, warning: bool) -> None:
        write = self.correlator.record(ref, reason, message, warning, utcnow())
        if isinstance(write, BumpEvent):
            if write.key in self._bumping:  # a bump is queued or in flight: it sends the latest count
                self._bumping[write.key] = True
                return
            self._bumping[write.key] = False
            self._spawn(self._bump(write))
        elif write is not None:
            self._spawn(self._create(write))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bump(self, write: BumpEvent) -> None:
        """Patches of one Event, one at a time, each with the count as it is when sent: concurrent
        patches could land out of order and leave an older count."""
        key, ns = write.key, write.key.ref.namespace
        try:
            while True:
                self._bumping[key] = False
                patch = self.correlator.bump(key)
                if patch is None:
                    return
                await self._open.wait()
                async with self._slots:
                    await self.kube.merge_patch(f"/api/v1/namespaces/{q(ns)}/events/{q(write.name)}", patch)
                if not self._bumping[key]:
                    return
        except KubeApiError as exc:
            self.correlator.failed(key)
            if exc.status == 404:  # expired meanwhile: post it afresh
                fresh = self.correlator.record(key.ref, key.reason, key.message, key.warning, utcnow())
                if isinstance(fresh, CreateEvent):
                    await self._create(fresh)
            else:
                log.warning("could not update Event %s on %s: %s", key.reason, key.ref.name, exc)
        except (OSError, TimeoutError) as exc:
            self.correlator.failed(key)
            log.warning("could not update Event %s on %s: %s", key.reason, key.ref.name, exc)
        finally:
            self._bumping.pop(key, None)

    async def _create(self, write: CreateEvent) -> None:
        await self._open.wait()
        async with self._slots:
            try:
                created = await self.kube.create(f"/api/v1/namespaces/{q(write.key.ref.namespace)}/events", write.body)
            except (KubeApiError, OSError, TimeoutError) as exc:
                self.correlator.failed(write.key)
                log.warning("could not post Event %s on %s: %s", write.key.reason, write.key.ref.name, exc)
                return
        self.correlator.posted(write.key, str((created.get("metadata") or {}).get("name", "")))

    async def close(self) -> None:
        """Let the Events in flight finish (bounded by the client's timeout)."""
        self._open.set()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
