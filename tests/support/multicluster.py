"""Helpers of the multi-cluster tier: per-test namespaces in every cluster of the stack. Workloads,
conditions and the nomination are in harness.multicluster (the benchmarks use them too)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from kubernetes import client

from harness.multicluster import KUEUE_GROUP, KUEUE_VERSION, Stack, Worker, custom


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
