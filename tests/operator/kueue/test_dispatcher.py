"""The dispatcher's bookkeeping between its watches and the decision: which workers are available and
why not, which workloads are decided again when one comes or goes, and what is kept of worker pods."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from prometheus_client import CollectorRegistry

from green_operator.config import parse_config
from green_operator.controller.ledger import CapacityLedger
from green_operator.kueue.dispatcher import MultiKueueDispatcher, _slim_pod
from green_operator.metrics import OperatorMetrics

CONFIG = {
    "regions": [{"name": "north"}, {"name": "south"}],
    "multiKueue": {
        "enabled": True,
        "workers": [
            {"cluster": "worker-a", "region": "north", "kubeconfig": "/a"},
            {"cluster": "worker-b", "region": "south", "kubeconfig": "/b"},
        ],
    },
}


def dispatcher() -> MultiKueueDispatcher:
    cfg = parse_config(CONFIG)
    ledger = CapacityLedger({r.name: r for r in cfg.regions}, timedelta(hours=1))
    metrics = OperatorMetrics(CollectorRegistry())
    none = cast(Any, None)  # the API, forecasts and carbon service are not used here
    return MultiKueueDispatcher(cfg, none, ledger, none, none, metrics)


def mkc(name: str, active: bool, message: str = "") -> dict[str, Any]:
    cond = {"type": "Active", "status": "True" if active else "False", "message": message}
    return {"metadata": {"name": name}, "status": {"conditions": [cond]}}


def waiting_workload(name: str, check: str = "mk", cluster: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"admissionChecks": [{"name": check, "state": "Pending"}]}
    if cluster:
        status["clusterName"] = cluster
    meta = {"namespace": "ns", "name": name, "creationTimestamp": "2026-12-01T00:00:00Z"}
    return {"metadata": meta, "spec": {}, "status": status}


def test_a_worker_is_available_when_its_cluster_is_active_and_it_answers_us() -> None:
    d = dispatcher()
    d.cluster_event("ADDED", mkc("worker-a", True))
    d.worker_state["worker-a"].reachable = True
    d.worker_state["worker-a"].free_gpus = 6
    ws = d.workers()
    assert ws["worker-a"].available
    assert ws["worker-a"].free_gpus == 6
    assert not ws["worker-b"].available
    assert "no MultiKueueCluster worker-b" in ws["worker-b"].why


def test_an_inactive_cluster_says_why_and_an_unreachable_one_too() -> None:
    d = dispatcher()
    d.cluster_event("ADDED", mkc("worker-a", False, "connection refused"))
    d.cluster_event("ADDED", mkc("worker-b", True))
    d.worker_state["worker-b"].why = "worker worker-b does not answer: timeout"
    ws = d.workers()
    assert "connection refused" in ws["worker-a"].why
    assert "does not answer" in ws["worker-b"].why


def test_a_worker_that_goes_puts_the_waiting_workloads_back_in_the_queue() -> None:
    d = dispatcher()
    d.check_event("ADDED", {"metadata": {"name": "mk"}, "spec": {"controllerName": "kueue.x-k8s.io/multikueue"}})
    d.cluster_event("ADDED", mkc("worker-a", True))
    d.workload_event("ADDED", waiting_workload("w1"))
    d.workload_event("ADDED", waiting_workload("w2", cluster="worker-a"))  # reserved: Kueue's now
    d.workload_event("ADDED", waiting_workload("w3", check="other"))  # not a MultiKueue workload
    while not d.queue.empty():
        d.queued.discard(d.queue.get_nowait())
    d.cluster_event("MODIFIED", mkc("worker-a", False, "gone"))
    queued = set()
    while not d.queue.empty():
        queued.add(d.queue.get_nowait())
    assert queued == {"ns/w1"}


def test_the_checks_config_names_the_workers() -> None:
    d = dispatcher()
    params = {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": "cfg"}
    d.check_event(
        "ADDED",
        {"metadata": {"name": "mk"}, "spec": {"controllerName": "kueue.x-k8s.io/multikueue", "parameters": params}},
    )
    d.config_event("ADDED", {"metadata": {"name": "cfg"}, "spec": {"clusters": ["worker-b", "worker-a"]}})
    assert d.config_clusters[d.check_configs["mk"]] == ("worker-b", "worker-a")
    d.check_event("ADDED", {"metadata": {"name": "carbon"}, "spec": {"controllerName": "greentraining.io/carbon"}})
    assert d.checks == {"mk"}


def test_a_finished_worker_pod_keeps_what_accounting_reads() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}, "managedFields": [{}]},
        "spec": {"containers": [{"name": "c"}], "nodeName": "n"},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c"}]},
    }
    slim = _slim_pod(pod, "worker-a")
    assert slim["_cluster"] == "worker-a"
    assert slim["metadata"]["labels"] == {"a": "b"}
    assert "managedFields" not in slim["metadata"]
    assert slim["status"] == pod["status"]
    assert slim["spec"] == {"containers": [{"name": "c"}]}
