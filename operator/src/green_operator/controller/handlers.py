"""kopf registrations: thin, typed, nothing but wiring into the Controller (kept in kopf's memo).

kopf watches what this operator acts on (GreenTrainingJobs and their Jobs, in its namespaces or
cluster-wide). The capacity ledger is fed by its own read-only, cluster-wide watches (every
GreenTrainingJob, pod and node), started here: two operators on the same nodes, each acting on its
own namespaces, then count each other's bookings. kopf writes nothing to our resources: no
change-detecting handlers (no diff-base annotations) and no daemons (no finalizers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf

from green_operator.api.manifests import GROUP, KIND, LABEL_MANAGED_BY, MANAGED_BY, PLURAL, VERSION

from . import joint_task
from .driver import Controller
from .kube import gtj_path, run_until_cancelled

CARBON_THREADS = 8
"""Carbon providers' HTTP clients are synchronous: they run in these threads."""
Logger = logging.Logger | logging.LoggerAdapter[Any]


def post_event(body: Mapping[str, Any], reason: str, message: str, warning: bool) -> None:
    # kopf queues events and posts them from its own task: no API call on the decision's path.
    (kopf.warn if warning else kopf.info)(cast(kopf.Body, body), reason=reason, message=message)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(CARBON_THREADS, thread_name_prefix="carbon"))
    if not logging.getLogger("green_operator").isEnabledFor(logging.DEBUG):
        # kopf logs every watch-event handler call at INFO; on a busy cluster that is noise and CPU.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    controller: Controller = memo["controller"]
    memo["ledger_watches"] = asyncio.create_task(_ledger_watches(controller), name="ledger watches")
    if controller.config.joint is not None:
        every = controller.config.joint.interval or controller.config.replan_interval
        joint = joint_task.run(controller, controller.config.joint, every)
        memo["joint"] = asyncio.create_task(joint, name="joint re-plan")
    if controller.config.kueue_enabled:
        memo["kueue"] = asyncio.create_task(
            _kueue_checks(controller, memo.get("namespaces") or ()), name="kueue checks"
        )
    logger.info("green-training-operator configured")


async def _ledger_watches(c: Controller) -> None:
    ledger = c.ledger
    listed = [asyncio.Event() for _ in range(4)]

    def jobs_relisted(items: list[dict[str, Any]]) -> None:
        for obj in items:
            meta = obj.get("metadata") or {}
            ledger.observe_job(f"{meta.get('namespace')}/{meta.get('name')}", obj)

    def job_event(kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if kind == "DELETED":
            if key not in c.bodies:
                ledger.forget(key)
        else:
            ledger.observe_job(key, obj)

    def pods_relisted(items: list[dict[str, Any]]) -> None:
        for obj in items:
            c.observe_pod(obj)

    def pod_event(kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            ledger.forget_pod(str((obj.get("metadata") or {}).get("uid", "")))
            c.observe_pod({**obj, "status": {"phase": "Succeeded"}})
        else:
            c.observe_pod(obj)

    def nodes_relisted(items: list[dict[str, Any]]) -> None:
        ledger.nodes.clear()
        for obj in items:
            ledger.observe_node(obj)

    def node_event(kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            ledger.forget_node(str((obj.get("metadata") or {}).get("name")))
        else:
            ledger.observe_node(obj)

    def held_relisted(items: list[dict[str, Any]]) -> None:
        ledger.held.clear()
        for obj in items:
            c.observe_held(obj)

    def held_event(kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            c.observe_held({**obj, "metadata": {**(obj.get("metadata") or {}), "finalizers": []}})
        else:
            c.observe_held(obj)

    async def ready() -> None:
        await asyncio.gather(*(e.wait() for e in listed))
        c.ready.set()

    kube = c.kube
    await run_until_cancelled(
        kube.informer(gtj_path(), job_event, jobs_relisted, ready=listed[0]),
        # Pods that hold or wait for a node; finished ones free their GPUs.
        kube.informer(
            "/api/v1/pods",
            pod_event,
            pods_relisted,
            query=[("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")],
            ready=listed[1],
        ),
        kube.informer("/api/v1/nodes", node_event, nodes_relisted, ready=listed[2]),
        # Our own pods, finished ones too: a paused pod ends (Failed) before its report finalizer,
        # which the watch above no longer shows, lets it go.
        kube.informer(
            "/api/v1/pods",
            held_event,
            held_relisted,
            query=[("labelSelector", f"{LABEL_MANAGED_BY}={MANAGED_BY}")],
            ready=listed[3],
        ),
        ready(),
    )


async def _kueue_checks(c: Controller, namespaces: tuple[str, ...]) -> None:
    """The carbon AdmissionCheck controller: same ledger and forecasts, after the ledger has listed."""
    from green_operator.kueue.controller import KueueCheckController

    await c.ready.wait()
    kueue = KueueCheckController(
        c.config, c.config.kueue, c.kube, c.ledger, c.forecasts, c.carbon, c.metrics, frozenset(namespaces)
    )
    await kueue.run()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def gtj_event(event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    controller: Controller = memo["controller"]
    key = f"{namespace}/{name}"
    if event.get("type") == "DELETED":
        controller.forget(key)
        return
    controller.observe(key, event.get("object") or {})


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def job_event(
    event: kopf.RawEvent, namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any
) -> None:
    controller: Controller = memo["controller"]
    if not any(o.get("kind") == KIND for o in body.metadata.get("ownerReferences") or []):
        return
    gone = event.get("type") == "DELETED"
    controller.observe_child(str(namespace), name, None if gone else dict(body))


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    controller: Controller = memo["controller"]
    for name in ("ledger_watches", "kueue", "joint"):
        task = memo.get(name)
        if task is not None:
            task.cancel()
    await controller.shutdown()
    await controller.kube.close()
