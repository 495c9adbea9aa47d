"""The in-memory executor the simulator drives: merge patches, the ledger first, a 409 stops the batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from green_operator.controller.actions import (
    Book,
    CreateChild,
    CreateService,
    Emit,
    PatchChild,
    RecordRelease,
    Requeue,
    SetSuspended,
    WriteStatus,
)
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.memory import JsonDict, MemoryExecutor, merge_patch
from green_operator.controller.observed import JobMeta
from green_operator.planner import PowerRequest, Reservation
from green_operator.regions import RegionConfig
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.operator import gtj_body

T0 = datetime(2024, 1, 1, tzinfo=UTC)
KEY = "sim/j"


def test_merge_patch_is_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    patch = {"a": {"b": None, "c": [3], "e": {"f": None, "g": 2}}, "h": "x"}
    assert merge_patch(target, patch) == {"a": {"c": [3], "e": {"g": 2}}, "d": 1, "h": "x"}
    assert target == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # unchanged
    assert merge_patch({"a": 1}, "scalar") == "scalar"


def _executor(seen: list[JsonDict]) -> MemoryExecutor:
    ledger = CapacityLedger({"a": RegionConfig("a", {})}, timedelta(hours=48))

    def hook(key: str, child: JsonDict) -> JsonDict:
        seen.append(child)
        return {**child, "status": {"seen": True}}

    api = MemoryExecutor(ledger, on_child=hook)
    api.add(gtj_body(SimJob("j", T0, timedelta(hours=1), 2, T0 + timedelta(hours=5), ("a",)), PowerRequest()))
    return api


def test_actions_apply_in_order_and_a_second_create_stops_the_batch() -> None:
    seen: list[JsonDict] = []
    api = _executor(seen)
    meta = JobMeta.of(api.bodies[KEY])
    booking = Reservation("a", T0, T0 + timedelta(hours=1), 2)
    out = api.execute(
        meta,
        [
            CreateChild({"spec": {"suspend": True}}),
            WriteStatus({"phase": "Deferred", "plan": {"x": 1}}),
            Book(booking),
            Emit("WaitingForLowCarbonWindow", "deferred"),
            RecordRelease(0.0),
            Requeue(30.0),
        ],
    )
    assert api.ledger.booking(KEY) == booking  # the ledger's actions first
    assert (out.requeue, out.done, out.status_written, out.child_changed) == (30.0, False, True, True)
    assert out.metrics == [RecordRelease(0.0)]
    assert api.events[("WaitingForLowCarbonWindow", False)] == 1
    assert api.children[KEY]["status"] == {"seen": True}  # what the cluster made of it
    out = api.execute(meta, [SetSuspended(False), PatchChild({"spec": {"x": None}}), WriteStatus({"plan": None})])
    assert seen[-1]["spec"] == {"suspend": False}
    assert api.status(KEY) == {"phase": "Deferred"}
    out = api.execute(meta, [CreateChild({"spec": {}}), WriteStatus({"phase": "Running"}), Requeue(60.0)])
    assert out.requeue == 0.0  # a 409: look again at the child as it is
    assert api.status(KEY) == {"phase": "Deferred"}


def test_a_multi_pod_jobs_service_is_kept_once_and_observed_as_ours() -> None:
    api = _executor([])
    meta = JobMeta.of(api.bodies[KEY])
    assert api.service(KEY, meta.uid) is None
    owner = {"uid": meta.uid, "controller": True}
    svc = {"metadata": {"name": "x", "ownerReferences": [owner]}, "spec": {"clusterIP": "None"}}
    out = api.execute(meta, [CreateService(svc), WriteStatus({"phase": "Deferred"}), Requeue(1.0)])
    assert out.status_written  # created, the batch goes on
    out = api.execute(meta, [CreateService({"metadata": {"name": "other"}}), Requeue(1.0)])
    assert out.requeue == 1.0  # already there: adopted, not replaced
    assert api.services[KEY]["metadata"]["name"] == "x"
    state = api.service(KEY, meta.uid)
    assert state is not None
    assert state.owned
