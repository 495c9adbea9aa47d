"""kopf registrations: thin, typed, and nothing but wiring. The logic lives in lifecycle.py.

kopf writes nothing to our resources: there are no change-detecting handlers (so no diff-base
annotations or progress storage) and no kopf daemons (so no finalizers; see supervisor.py). The
GreenTrainingJob watch starts one lifecycle task per job; indexes give it the nodes' capacity and
every other job's reservation; the Job watch wakes it. Every handler is async: they share asyncio
objects (the wake-up events) with the lifecycle tasks, which must only be touched from the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from .lifecycle import World
from .manifests import GROUP, KIND, LABEL_MANAGED_BY, MANAGED_BY, PLURAL, VERSION
from .planner import Reservation
from .regions import NodeInfo, node_info
from .runtime import Runtime
from .spec import TrainingJobSpec, gpus_in_template, parse_spec
from .status import TERMINAL_PHASES, reservation_from_status
from .supervisor import Lifecycles

IO_THREADS = 32
Logger = logging.Logger | logging.LoggerAdapter[Any]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, logger: Logger, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # API calls run in threads (the kubernetes client is synchronous): size the pool for bursts.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(IO_THREADS, thread_name_prefix="green-io"))
    logger.info("green-training-operator configured")
    if not logging.getLogger("green_operator").isEnabledFor(logging.DEBUG):
        # kopf logs every watch-event handler call at INFO; on a busy cluster that is noise and CPU.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


@kopf.index("", "v1", "nodes")
async def gpu_nodes(name: str, body: kopf.Body, **_: Any) -> dict[str, NodeInfo]:
    return {name: node_info(body)}


@kopf.index(GROUP, VERSION, PLURAL)
async def gtj_reservations(
    namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, Reservation] | None:
    try:
        gpus = max(gpus_in_template(spec.get("template") or {}), 1) * int(spec.get("parallelism", 1))
    except (TypeError, ValueError):
        return None
    r = reservation_from_status(status, gpus)
    return {f"{namespace}/{name}": r} if r else None


@kopf.on.event(GROUP, VERSION, PLURAL)
async def gtj_event(
    event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, logger: Logger, **kwargs: Any
) -> None:
    rt: Runtime = memo["runtime"]
    lifecycles: Lifecycles = memo["lifecycles"]
    if lifecycles.world_of is None:
        # kopf passes each index as a kwarg named after its function; they are live views.
        gpu_nodes: kopf.Index[str, NodeInfo] = kwargs["gpu_nodes"]
        gtj_reservations: kopf.Index[str, Reservation] = kwargs["gtj_reservations"]

        def world() -> World:
            return World(
                nodes=[n for store in gpu_nodes.values() for n in store],
                reservations={k: next(iter(v)) for k, v in gtj_reservations.items() if v},
            )

        lifecycles.world_of = world
    key = f"{namespace}/{name}"
    if event.get("type") == "DELETED":
        lifecycles.forget(key)
        rt.forget(key)
        return
    obj = without_managed_fields(event.get("object") or {})
    status = obj.get("status") or {}
    if key not in rt.statuses and not status.get("plannedStart") and status.get("phase") not in TERMINAL_PHASES:
        rt.unplanned.add(key)  # before its task starts, so the task sees itself counted
    lifecycles.observe(key, obj)
    rt.observe_status(key, status)
    if key not in rt.statuses:  # jobs planned before this process started (a restart)
        # Only a deferred job can be moved: no spec parsing for every creation in a burst.
        parsed = parse_spec(obj, rt.config.region_names) if status.get("phase") == "Deferred" else None
        rt.track_movable(key, parsed if isinstance(parsed, TrainingJobSpec) else None, status)
    meta = obj.get("metadata") or {}
    # A spec edit (new generation) while waiting: wake the lifecycle to re-plan.
    if status.get("phase") == "Deferred" and meta.get("generation") != status.get("observedGeneration"):
        rt.poke(key)


def without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as kept for its lifecycle: managedFields (a field list per writer, often most of
    the object's size) are never read, and a thousand jobs' worth is tens of MiB."""
    meta = obj.get("metadata") or {}
    if "managedFields" not in meta:
        return dict(obj)
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


@kopf.on.cleanup()
async def stop_lifecycles(memo: Any, **_: Any) -> None:
    await memo["lifecycles"].shutdown()


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def job_event(event: kopf.RawEvent, namespace: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    rt: Runtime = memo["runtime"]
    owner = next((o for o in body.metadata.get("ownerReferences") or [] if o.get("kind") == KIND), None)
    if owner is None:
        return
    key = f"{namespace}/{owner['name']}"
    if event.get("type") == "DELETED":
        rt.jobs.pop(key, None)
    else:
        rt.jobs[key] = dict(body)
    rt.poke(key)
