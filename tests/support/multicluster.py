"""Helpers of the multi-cluster tier: per-test namespaces in every cluster of the stack, Workloads read
through a given cluster's client, and the nomination as an external dispatcher writes it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from kubernetes import client

from harness.multicluster import Cluster, Stack, Worker
from tests.support.kueue import KUEUE_GROUP, KUEUE_VERSION

APPLY_PATCH = "application/apply-patch+yaml"
ADMISSION_FIELD_MANAGER = "kueue-admission"
"""Kueue applies a Workload's whole admission status under this field manager; a nomination must too."""


def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api())


def stack_namespace(stack: Stack) -> Iterator[str]:
    """A fresh Kueue-managed namespace with the stack's LocalQueue, in the manager and every worker
    (MultiKueue creates the remote copy in the same namespace, for the same LocalQueue)."""
    name = f"mc-{uuid.uuid4().hex[:10]}"
    for c in stack.clusters:
        client.CoreV1Api(c.api()).create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels={"test": "true", **stack.namespace_label})
            )
        )
        cq = c.cluster_queue if isinstance(c, Worker) else stack.manager_cluster_queue
        custom(c).create_namespaced_custom_object(
            KUEUE_GROUP,
            KUEUE_VERSION,
            name,
            "localqueues",
            {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
                "kind": "LocalQueue",
                "metadata": {"name": stack.local_queue},
                "spec": {"clusterQueue": cq},
            },
        )
    try:
        yield name
    finally:
        for c in stack.clusters:
            # A worker whose apiserver a test killed may not answer: its state goes with the stack.
            with contextlib.suppress(Exception):
                client.CoreV1Api(c.api()).delete_namespace(name, propagation_policy="Background", _request_timeout=10)


def workloads(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = custom(cluster).list_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, namespace, "workloads"
    )["items"]
    return items


def workload_of(cluster: Cluster, namespace: str, owner: str) -> dict[str, Any] | None:
    for wl in workloads(cluster, namespace):
        if any(o.get("name") == owner for o in wl["metadata"].get("ownerReferences") or []):
            return wl
    return None


def nominate(cluster: Cluster, wl: dict[str, Any], workers: list[str]) -> dict[str, Any]:
    """Write status.nominatedClusterNames as Kueue's own external-dispatcher test does
    (test/integration/multikueue/dispatcher_test.go, workload.PatchAdmissionStatus): the whole
    admission status as read, with its resourceVersion, server-side applied to the status as
    `kueue-admission`. A stale read fails with 409 Conflict: read again and retry."""
    meta = wl["metadata"]
    body = {
        "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
        "kind": "Workload",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
        "status": {**wl["status"], "nominatedClusterNames": workers},
    }
    result: dict[str, Any] = custom(cluster).patch_namespaced_custom_object_status(
        KUEUE_GROUP,
        KUEUE_VERSION,
        meta["namespace"],
        "workloads",
        meta["name"],
        body,
        field_manager=ADMISSION_FIELD_MANAGER,
        force=True,
        _content_type=APPLY_PATCH,
    )
    return result


def condition_status(obj: dict[str, Any] | None, kind: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None
