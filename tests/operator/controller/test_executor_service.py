"""`ApiExecutor` and the headless Service: created, adopted after a 409 when ours, a conflict when not
(the batch stops before the child is made); a PATCH on a vanished child is seen as gone."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from green_operator.controller.actions import Action, CreateChild, CreateService, PatchChild, Requeue
from green_operator.controller.executor import ApiExecutor, Outcome
from green_operator.controller.kube import KubeApiError
from green_operator.controller.observed import JobMeta
from green_operator.metrics import OperatorMetrics
from tests.operator.controller import builders as b

SERVICE = {"metadata": {"name": "job", "namespace": b.NS}, "spec": {"clusterIP": "None"}}


class FakeKube:
    """The calls the executor makes, answered from dictionaries keyed by path."""

    def __init__(self, existing: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.objects: dict[str, dict[str, Any]] = dict(existing or {})
        self.created: list[str] = []

    async def create(self, path: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        full = f"{path}/{manifest['metadata']['name']}"
        if full in self.objects:
            raise KubeApiError(409, "AlreadyExists", "POST", path)
        self.objects[full] = dict(manifest)
        self.created.append(full)
        return dict(manifest)

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        if path not in self.objects:
            raise KubeApiError(404, "NotFound", "PATCH", path)
        return self.objects[path]


SVC_PATH = f"/api/v1/namespaces/{b.NS}/services/job"
JOB_PATH = f"/apis/batch/v1/namespaces/{b.NS}/jobs/job"


def run(kube: FakeKube, actions: list[Action]) -> Outcome:
    metrics = OperatorMetrics(CollectorRegistry())
    executor = ApiExecutor(kube, b.new_ledger(), metrics, lambda *_: None)  # type: ignore[arg-type]
    meta = JobMeta.of(b.body())
    return asyncio.run(executor.execute(meta, b.body(), actions))


def _owned(uid: str) -> dict[str, Any]:
    return {**SERVICE, "metadata": {**SERVICE["metadata"], "ownerReferences": [{"uid": uid, "controller": True}]}}


def test_a_new_service_is_created_and_the_child_after_it() -> None:
    kube = FakeKube()
    out = run(kube, [CreateService(_owned(b.UID)), CreateChild({"metadata": {"name": "job"}}), Requeue(5.0)])
    assert kube.created == [SVC_PATH, JOB_PATH]
    assert out.service is not None
    assert out.service.owned
    assert out.requeue == 5.0


def test_a_service_left_by_a_previous_process_is_adopted() -> None:
    kube = FakeKube({SVC_PATH: _owned(b.UID)})
    out = run(kube, [CreateService(_owned(b.UID)), CreateChild({"metadata": {"name": "job"}}), Requeue(5.0)])
    assert kube.created == [JOB_PATH]
    assert out.service is not None
    assert out.service.owned


def test_someone_elses_service_stops_the_batch_before_the_child() -> None:
    kube = FakeKube({SVC_PATH: _owned("another-uid")})
    out = run(kube, [CreateService(_owned(b.UID)), CreateChild({"metadata": {"name": "job"}}), Requeue(5.0)])
    assert kube.created == []
    assert out.service is not None
    assert not out.service.owned
    assert out.requeue == 0.0  # decide again at once: the decision reports the conflict


def test_a_patch_on_a_vanished_child_is_seen_as_gone() -> None:
    out = run(FakeKube(), [PatchChild({"spec": {"ttlSecondsAfterFinished": 60}}), Requeue(1.0)])
    assert out.child_known
    assert out.child is None
    assert out.requeue == 1.0
