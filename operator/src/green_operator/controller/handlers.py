"""kopf registrations: thin, typed, nothing but wiring into the Controller (kept in kopf's memo).

kopf runs the process (start-up, clean-up, liveness, posting Events) but watches nothing itself.
The operator's own informers (one list-then-watch per resource) feed both the capacity ledger and
the Controller: every GreenTrainingJob on the cluster (two operators on the same nodes, each acting
on its own namespaces, count each other's bookings), pods and nodes, and the child Jobs in the
namespaces it acts on. kopf's per-event machinery (a deep copy of each body for a diff base, cause
detection, a second watch of every GreenTrainingJob) was a quarter of the operator's CPU in a burst.
kopf writes nothing to our resources: no change-detecting handlers and no daemons (no finalizers).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from green_operator.api.manifests import GROUP, KIND, LABEL_MANAGED_BY, MANAGED_BY

from . import joint_task
from .driver import Controller
from .kube import gtj_path, job_path, run_until_cancelled

CARBON_THREADS = 8
"""Carbon providers' HTTP clients are synchronous: they run in these threads."""
Logger = logging.Logger | logging.LoggerAdapter[Any]


@kopf.on.login()
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """kopf connects with the controller's own credentials. Its default login goes through the
    synchronous `kubernetes` client, whose import (every model) costs 34 MiB of resident memory
    in a process that never uses it; `green-operator run` keeps it out (cli/run.py)."""
    return connection_info(memo["controller"].kube.api.configuration)


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kubernetes_asyncio's Configuration (kubeconfig or in-cluster) as kopf's ConnectionInfo."""
    auth = str((cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken") or "")
    scheme, _, token = auth.partition(" ")
    return kopf.ConnectionInfo(
        server=str(cfg.host),
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
        scheme=scheme or None if token else None,
        token=token or None,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(CARBON_THREADS, thread_name_prefix="carbon"))
    if not logging.getLogger("green_operator").isEnabledFor(logging.DEBUG):
        # kopf logs every watch-event handler call at INFO; on a busy cluster that is noise and CPU.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    controller: Controller = memo["controller"]
    namespaces: tuple[str, ...] = memo.get("namespaces") or ()
    memo["watches"] = asyncio.create_task(_watches(controller, namespaces), name="watches")
    if controller.config.joint is not None:
        every = controller.config.joint.interval or controller.config.replan_interval
        joint = joint_task.run(controller, controller.config.joint, every)
        memo["joint"] = asyncio.create_task(joint, name="joint re-plan")
    if controller.config.kueue_enabled:
        memo["kueue"] = asyncio.create_task(_kueue_checks(controller, namespaces), name="kueue checks")
    if controller.config.multikueue_enabled:
        memo["multikueue"] = asyncio.create_task(
            _multikueue_dispatcher(controller, namespaces), name="multikueue dispatcher"
        )
    logger.info("green-training-operator configured")


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


async def _watches(c: Controller, namespaces: tuple[str, ...]) -> None:
    ledger = c.ledger
    children_paths = [job_path(ns) for ns in namespaces] or ["/apis/batch/v1/jobs"]
    listed = [asyncio.Event() for _ in range(4 + len(children_paths))]

    def ours(namespace: str) -> bool:
        return not namespaces or namespace in namespaces

    def gtjs_relisted(items: list[dict[str, Any]]) -> None:
        seen = set()
        for obj in items:
            ns, name = _key(obj)
            key = f"{ns}/{name}"
            seen.add(key)
            ledger.observe_job(key, obj)
            if ours(ns):
                c.observe(key, obj)
        for key in [k for k in c.bodies if k not in seen]:  # deleted while the watch was down
            c.forget(key)

    def gtj_event(kind: str, obj: dict[str, Any]) -> None:
        ns, name = _key(obj)
        key = f"{ns}/{name}"
        if kind == "DELETED":
            if key in c.bodies:
                c.forget(key)
            else:
                ledger.forget(key)
            return
        ledger.observe_job(key, obj)
        if ours(ns):
            c.observe(key, obj)

    def owned(obj: Mapping[str, Any]) -> bool:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        return any(r.get("kind") == KIND for r in refs)

    def children_relisted(path_namespace: str | None, items: list[dict[str, Any]]) -> None:
        seen = set()
        for obj in items:
            if owned(obj):
                seen.add(_key(obj))
                c.observe_child(*_key(obj), obj)
        for ns, name in list(c.by_child):  # deleted while the watch was down
            if (path_namespace is None or ns == path_namespace) and (ns, name) not in seen:
                c.observe_child(ns, name, None)

    def child_event(kind: str, obj: dict[str, Any]) -> None:
        if owned(obj):
            c.observe_child(*_key(obj), None if kind == "DELETED" else obj)

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
    managed = [("labelSelector", f"{LABEL_MANAGED_BY}={MANAGED_BY}")]
    await run_until_cancelled(
        kube.informer(gtj_path(), gtj_event, gtjs_relisted, ready=listed[0]),
        *(
            kube.informer(
                path,
                child_event,
                functools.partial(children_relisted, ns or None),
                query=managed,
                ready=listed[4 + i],
            )
            for i, (ns, path) in enumerate(zip(namespaces or ("",), children_paths, strict=True))
        ),
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
            query=managed,
            ready=listed[3],
        ),
        ready(),
    )


async def _kueue_checks(c: Controller, namespaces: tuple[str, ...]) -> None:
    """The carbon AdmissionCheck controller: same ledger and forecasts, after the ledger has listed."""
    from green_operator.kueue.controller import KueueCheckController

    await c.ready.wait()
    kueue = KueueCheckController(
        c.config,
        c.config.kueue,
        c.kube,
        c.ledger,
        c.forecasts,
        c.carbon,
        c.metrics,
        frozenset(namespaces),
        c.events,
    )
    await kueue.run()


async def _multikueue_dispatcher(c: Controller, namespaces: tuple[str, ...]) -> None:
    """MultiKueue's external dispatcher: same ledger and forecasts, after the ledger has listed."""
    from green_operator.kueue.dispatcher import MultiKueueDispatcher

    await c.ready.wait()
    await MultiKueueDispatcher(
        c.config, c.kube, c.ledger, c.forecasts, c.carbon, c.metrics, frozenset(namespaces), c.events
    ).run()


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    controller: Controller = memo["controller"]
    for name in ("watches", "kueue", "multikueue", "joint"):
        task = memo.get(name)
        if task is not None:
            task.cancel()
    await controller.shutdown()
    await controller.kube.close()
