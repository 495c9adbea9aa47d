"""The Event recorder against the real apiserver: one Event per distinct event, its count bumped
when the same one recurs, and a new one posted when the bumped Event has gone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from green_operator.controller.kube import AsyncKube, load_client
from green_operator.controller.recorder import EventRecorder
from harness.cluster import kubeconfig
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


def _events(namespace: str) -> list[Any]:
    return list(client.CoreV1Api().list_namespaced_event(namespace).items)


def test_the_same_event_is_counted_on_one_event(namespace: str) -> None:
    cm = client.CoreV1Api().create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="subject"))
    )
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": namespace, "name": "subject", "uid": cm.metadata.uid},
    }

    async def post_all() -> None:
        kube = AsyncKube(await load_client(str(kubeconfig())))
        try:
            rec = EventRecorder(kube)
            rec.post(body, "Deferred", "waiting", False)
            await rec.close()  # created: the next ones bump it
            for _ in range(2):
                rec.post(body, "Deferred", "waiting", False)
            rec.post(body, "Started", "now", True)
            await rec.close()
            counted = [(e.count, e.type) for e in _events(namespace) if e.reason == "Deferred"]
            assert counted == [(3, "Normal")]
            # The Event is deleted behind the recorder's back: the next occurrence posts a new one.
            for e in _events(namespace):
                if e.reason == "Deferred":
                    client.CoreV1Api().delete_namespaced_event(e.metadata.name, namespace)
            rec.post(body, "Deferred", "waiting", False)
            await rec.close()
        finally:
            await kube.close()

    asyncio.run(post_all())
    events = wait_for(lambda: [e for e in _events(namespace) if e.reason == "Deferred"], timeout=10, message="Deferred")
    started = [e for e in _events(namespace) if e.reason == "Started"]
    assert [(e.type, e.count, e.involved_object.uid) for e in started] == [("Warning", 1, cm.metadata.uid)]
    assert len(events) == 1
    assert events[0].count == 1  # the one counted three times was deleted: posted afresh
    assert events[0].source.component == "green-training-operator"
