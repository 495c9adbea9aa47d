"""`reconcile()` for what shapes the child: a multi-pod job's headless Service (created first, adopted,
or a conflict), the Job fields (TTL only once accounted), labels, and a finished job's missing child."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from green_operator.api.conditions import Reason
from green_operator.api.phase import Phase
from green_operator.controller.actions import (
    Action,
    CreateChild,
    CreateService,
    Done,
    PatchChild,
    RecreateChild,
    WriteStatus,
)
from green_operator.controller.observed import ServiceState
from green_operator.controller.reconcile import CONFLICT_POLL, reconcile
from tests.operator.controller import builders as b

OURS = ServiceState(owned=True)


def kinds(actions: Sequence[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def after(status: Mapping[str, Any], actions: Sequence[Action]) -> dict[str, Any]:
    out = dict(status)
    for a in actions:
        if isinstance(a, WriteStatus):
            out = b.merge(out, a.patch)
    return out


def body(**kw: Any) -> dict[str, Any]:
    labels = kw.pop("labels", None)
    job = kw.pop("job", None)
    out = b.body(**kw)
    if labels is not None:
        out["metadata"]["labels"] = labels
    if job is not None:
        out["spec"]["job"] = job
    return out


def first(bd: Mapping[str, Any], **kw: Any) -> list[Action]:
    return reconcile(b.observed(bd, **kw))


def test_a_multi_pod_job_creates_its_service_before_its_child() -> None:
    acts = first(body(parallelism=4, labels={"team": "vision"}))
    api = [a for a in acts if isinstance(a, CreateService | CreateChild)]
    assert kinds(api) == ["CreateService", "CreateChild"]
    svc = api[0].manifest
    assert isinstance(api[0], CreateService)
    assert svc["metadata"]["name"] == "job"
    assert svc["metadata"]["ownerReferences"][0]["uid"] == b.UID
    assert svc["metadata"]["labels"]["team"] == "vision"


def test_a_single_pod_job_has_no_service() -> None:
    assert not any(isinstance(a, CreateService) for a in first(body()))


def test_an_existing_service_of_ours_is_not_created_again() -> None:
    acts = first(body(parallelism=2), service=OURS)
    assert not any(isinstance(a, CreateService) for a in acts)
    assert any(isinstance(a, CreateChild) for a in acts)


def test_someone_elses_service_of_that_name_is_a_conflict_and_no_child_is_made() -> None:
    acts = first(body(parallelism=2), service=ServiceState(owned=False))
    assert not any(isinstance(a, CreateChild | CreateService) for a in acts)
    status = after({}, acts)
    planned = next(c for c in status["conditions"] if c["type"] == "Planned")
    assert planned["reason"] == Reason.CHILD_CONFLICT
    assert "a Service named job already exists" in planned["message"]
    assert kinds(acts)[-1] == "Requeue"
    assert acts[-1].after == CONFLICT_POLL


def _released(bd: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    acts = reconcile(b.observed(bd, service=OURS))
    status = after({}, acts)
    manifest = next(a.manifest for a in acts if isinstance(a, CreateChild | RecreateChild))
    if status["phase"] == Phase.DEFERRED:
        child = b.child(manifest)
        acts = reconcile(b.observed(bd, status=status, child=child, now=b.at(4), service=OURS))
        status = after(status, acts)
    assert status["phase"] == Phase.STARTING
    return status, dict(manifest)


def test_a_deleted_service_of_a_running_job_is_created_again() -> None:
    bd = body(parallelism=2)
    status, manifest = _released(bd)
    child = b.child(manifest, suspended=False, started=b.at(4), ready=2)
    acts = reconcile(b.observed(bd, status=status, child=child, now=b.at(5), data={}, service=None))
    assert kinds(acts)[0] == "CreateService"


def test_the_ttl_reaches_the_child_only_after_the_job_is_accounted() -> None:
    bd = body(job={"ttlSecondsAfterFinished": 600, "activeDeadlineSeconds": 7200})
    status, manifest = _released(bd)
    assert "ttlSecondsAfterFinished" not in manifest["spec"]
    assert manifest["spec"]["activeDeadlineSeconds"] == 7200
    child = b.child(manifest, suspended=False, started=b.at(4), complete_at=b.at(6))
    now = b.at(7)
    acts = reconcile(
        b.observed(bd, status=status, child=child, now=now, data={}, accounting=b.accounting(status, child, now))
    )
    assert kinds(acts) == ["WriteStatus", "Book", "RecordFinish", "Emit", "PatchChild", "Done"]
    assert after(status, acts)["phase"] == Phase.SUCCEEDED
    patch = next(a for a in acts if isinstance(a, PatchChild)).patch
    assert patch == {"spec": {"ttlSecondsAfterFinished": 600}}


def test_without_a_ttl_the_finished_child_is_left_alone() -> None:
    bd = body()
    status, manifest = _released(bd)
    child = b.child(manifest, suspended=False, started=b.at(4), complete_at=b.at(6))
    now = b.at(7)
    acts = reconcile(
        b.observed(bd, status=status, child=child, now=now, data={}, accounting=b.accounting(status, child, now))
    )
    assert not any(isinstance(a, PatchChild) for a in acts)


def test_a_missing_child_of_a_started_or_finished_job_never_brings_a_second_one() -> None:
    bd = body(parallelism=2, job={"ttlSecondsAfterFinished": 0})
    status, _ = _released(bd)
    now = b.at(7)
    # Released, child gone (deleted by hand): accounted as failed, never re-created, no TTL to set.
    acts = reconcile(
        b.observed(
            bd, status=status, child=None, now=now, data={}, accounting=b.accounting(status, None, now), service=OURS
        )
    )
    assert not any(isinstance(a, CreateChild | RecreateChild | PatchChild | CreateService) for a in acts)
    finished = after(status, acts)
    assert finished["phase"] == Phase.FAILED
    # Finished, child gone (its TTL ran out): nothing at all.
    acts = reconcile(b.observed(bd, status=finished, child=None, now=b.at(30), data={}))
    assert not any(isinstance(a, CreateChild | RecreateChild | CreateService) for a in acts)
    assert isinstance(acts[-1], Done)


def test_labels_and_job_fields_shape_the_child_and_an_edit_to_the_fields_rebuilds_a_waiting_one() -> None:
    bd = body(
        parallelism=2,
        max_delay="12h",
        labels={"team": "vision", "kueue.x-k8s.io/queue-name": "q"},
        job={"backoffLimitPerIndex": 1, "maxFailedIndexes": 1},
    )
    bd["spec"]["template"] = {**bd["spec"]["template"], "metadata": {}}
    north = b.shaped(4, 8)
    acts = reconcile(b.observed(bd, data=b.forecasts(b.T0, north=north), service=OURS))
    manifest = next(a.manifest for a in acts if isinstance(a, CreateChild))
    status = after({}, acts)
    assert status["phase"] == Phase.DEFERRED
    assert manifest["metadata"]["labels"]["team"] == "vision"
    assert "kueue.x-k8s.io/queue-name" not in manifest["metadata"]["labels"]
    assert manifest["spec"]["template"]["metadata"]["labels"]["team"] == "vision"
    assert manifest["spec"]["backoffLimitPerIndex"] == 1
    assert "backoffLimit" not in manifest["spec"]
    edited = body(
        generation=2,
        parallelism=2,
        max_delay="12h",
        labels={"team": "vision"},
        job={"backoffLimitPerIndex": 2, "maxFailedIndexes": 1},
    )
    edited["spec"]["template"] = bd["spec"]["template"]
    acts = reconcile(
        b.observed(edited, status=status, child=b.child(manifest), data=b.forecasts(b.T0, north=north), service=OURS)
    )
    rebuilt = next(a.manifest for a in acts if isinstance(a, RecreateChild))
    assert rebuilt["spec"]["backoffLimitPerIndex"] == 2
