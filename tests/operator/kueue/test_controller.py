"""The controller's write of our admission-check entry: only ours, in the shape Kueue requires."""

from __future__ import annotations

from datetime import timedelta

from green_operator.kueue.admission import CheckUpdate
from green_operator.kueue.controller import check_apply, workloads_path
from green_operator.kueue.workload import workload_view
from green_operator.times import rfc3339
from tests.operator.kueue.test_admission import CHECK, MANAGED, T0, workload


def test_apply_carries_only_our_entry_with_the_fields_kueue_requires() -> None:
    body = workload(MANAGED)
    body["status"]["admissionChecks"].append({"name": "provisioning", "state": "Pending", "message": ""})
    wl = workload_view(body)
    update = CheckUpdate("Ready", "Admitted", None, ({"name": "main", "annotations": {"a": "1"}},))
    doc = check_apply(wl, CHECK, update, T0 + timedelta(minutes=1))
    (entry,) = doc["status"]["admissionChecks"]  # a merge patch would have replaced the other check's
    assert entry["name"] == CHECK
    assert entry["state"] == "Ready"
    assert entry["message"] == "Admitted"
    assert entry["lastTransitionTime"] == rfc3339(T0 + timedelta(minutes=1))  # a new state starts now
    assert entry["podSetUpdates"] == [{"name": "main", "annotations": {"a": "1"}}]
    assert doc["metadata"] == {"name": "job-x", "namespace": "ns"}
    assert doc["kind"] == "Workload"


def test_same_state_keeps_its_transition_time() -> None:
    body = workload(MANAGED)
    body["status"]["admissionChecks"][0]["lastTransitionTime"] = rfc3339(T0)
    doc = check_apply(workload_view(body), CHECK, CheckUpdate("Pending", "held"), T0 + timedelta(hours=1))
    assert doc["status"]["admissionChecks"][0]["lastTransitionTime"] == rfc3339(T0)
    assert "podSetUpdates" not in doc["status"]["admissionChecks"][0]


def test_workload_paths() -> None:
    assert workloads_path() == "/apis/kueue.x-k8s.io/v1beta2/workloads"
    assert workloads_path("ns", "w", "status") == "/apis/kueue.x-k8s.io/v1beta2/namespaces/ns/workloads/w/status"
