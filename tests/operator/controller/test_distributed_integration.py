"""Multi-pod jobs on the real control plane (kwok plays the kubelets): the headless Service, the pods'
DNS subdomain and host names, the rendezvous environment, and the user's labels on the child and pods."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from harness.waiting import wait_for
from tests.charts.jobs import TERMINATION_MESSAGE, trainer_report
from tests.support.gtjs import SLOT, create, get, gtj, phase_is, pods_of, traces_with_window
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "jobs" / "pretrain-shard.yaml"
RENDEZVOUS = ("PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT", "MASTER_ADDR", "MASTER_PORT")


def _operator(tmp_path: Path, operator_factory: Any, clean_region: str) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(now, low_from=timedelta(0), low_for=timedelta(minutes=5), clean_region=clean_region)
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))


def _pods(namespace: str, job: str, count: int) -> list[client.V1Pod]:
    def all_there() -> list[client.V1Pod] | None:
        pods = pods_of(namespace, job)
        return pods if len(pods) >= count else None

    return wait_for(all_there, timeout=60, message=f"{count} pods of {job}")


def _env(pod: client.V1Pod) -> dict[str, Any]:
    return {e.name: e for e in pod.spec.containers[0].env or []}


def _assert_rendezvous(namespace: str, job: str, pods: list[client.V1Pod], nodes: int) -> None:
    master = f"{job}-0.{job}.{namespace}.svc"
    indexes = set()
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        indexes.add(index)
        assert pod.spec.subdomain == job
        assert pod.spec.hostname == f"{job}-{index}"
        env = _env(pod)
        assert set(RENDEZVOUS) <= set(env)
        assert env["PET_NNODES"].value == str(nodes)
        assert env["PET_MASTER_ADDR"].value == env["MASTER_ADDR"].value == master
        assert env["PET_MASTER_PORT"].value == env["MASTER_PORT"].value == "29500"
        rank = env["PET_NODE_RANK"].value_from.field_ref.field_path
        assert rank == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert indexes == {str(i) for i in range(nodes)}


def test_a_four_pod_job_gets_its_service_subdomain_environment_and_labels(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    _operator(tmp_path, operator_factory, "europe-west3")
    body = gtj("ddp", parallelism=4, max_delay="0s", regions=["europe-west3"])
    body["metadata"]["labels"] = {
        "team": "vision",
        "cost-center": "ml-42",
        "kueue.x-k8s.io/queue-name": "gpu",  # would hand the child to Kueue: never copied
    }
    body["metadata"]["annotations"] = {
        "owner": "ada@example.com",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    body["spec"]["template"]["metadata"]["labels"] = {"team": "vision-pods"}  # the template's own win on pods
    create(namespace, body)
    uid = get(namespace, "ddp")["metadata"]["uid"]

    svc = wait_for(
        lambda: _or_none(lambda: client.CoreV1Api().read_namespaced_service("ddp", namespace)),
        timeout=30,
        message="the headless Service",
    )
    assert svc.spec.cluster_ip == "None"
    assert svc.spec.publish_not_ready_addresses is True
    assert svc.spec.selector == {"greentraining.io/job": "ddp"}
    assert [(o.uid, o.controller) for o in svc.metadata.owner_references] == [(uid, True)]

    pods = _pods(namespace, "ddp", 4)
    _assert_rendezvous(namespace, "ddp", pods, 4)
    for pod in pods:
        labels = pod.metadata.labels
        assert labels["team"] == "vision-pods"
        assert labels["cost-center"] == "ml-42"
        assert "kueue.x-k8s.io/queue-name" not in labels
        assert pod.metadata.annotations["owner"] == "ada@example.com"
        assert "kubectl.kubernetes.io/last-applied-configuration" not in pod.metadata.annotations
    job = client.BatchV1Api().read_namespaced_job("ddp", namespace)
    assert job.metadata.labels["team"] == "vision"
    assert job.metadata.labels["cost-center"] == "ml-42"
    assert "kueue.x-k8s.io/queue-name" not in job.metadata.labels
    assert job.metadata.annotations["owner"] == "ada@example.com"
    assert job.spec.completion_mode == "Indexed"
    wait_for(lambda: phase_is(namespace, "ddp", "Succeeded"), timeout=60, message="Succeeded")


def test_the_pretrain_shard_example_applies_and_its_pods_get_the_rendezvous_environment(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    example["metadata"]["namespace"] = namespace
    api = client.CustomObjectsApi()
    # As written: the CRD accepts it.
    api.create_namespaced_custom_object(
        "greentraining.io", "v1alpha1", namespace, "greentrainingjobs", example, dry_run="All"
    )
    # Run now rather than within a day; nothing else changes.
    body = copy.deepcopy(example)
    body["spec"]["schedule"] = {"maxDelay": "0s"}
    body["spec"]["estimatedDuration"] = "20s"
    _operator(tmp_path, operator_factory, example["spec"]["placement"]["regions"][0])
    create(namespace, body)
    name = example["metadata"]["name"]
    pods = _pods(namespace, name, example["spec"]["parallelism"])
    _assert_rendezvous(namespace, name, pods, example["spec"]["parallelism"])
    args = pods[0].spec.containers[0].args
    assert "--nproc_per_node=4" in args
    assert not any(a.startswith("--nnodes") for a in args)  # torchrun reads PET_NNODES


def test_a_ttl_deletes_the_child_only_after_the_job_is_accounted(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    _operator(tmp_path, operator_factory, "europe-west3")
    body = gtj(
        "ttl", max_delay="0s", regions=["europe-west3"], annotations={TERMINATION_MESSAGE: trainer_report(7200.0)}
    )
    body["spec"]["job"] = {"ttlSecondsAfterFinished": 0}
    create(namespace, body)
    batch = client.BatchV1Api()
    job = wait_for(lambda: _or_none(lambda: batch.read_namespaced_job("ttl", namespace)), timeout=30, message="the Job")
    assert job.spec.ttl_seconds_after_finished is None  # held until the job is accounted
    done = wait_for(lambda: phase_is(namespace, "ttl", "Succeeded"), timeout=60, message="Succeeded")
    assert done["energy"]["joules"] == pytest.approx(7200.0)  # the trainer's report, read before deletion
    assert done["energy"]["source"] == "nvml"
    # Then handed to the TTL controller, which deletes it at once (TTL 0 from its finish).
    wait_for(lambda: _or_none(lambda: batch.read_namespaced_job("ttl", namespace)) is None, timeout=30, message="gone")
    assert phase_is(namespace, "ttl", "Succeeded")  # and no second Job: the finished job stays as it was
    assert _or_none(lambda: batch.read_namespaced_job("ttl", namespace)) is None


def _or_none(read: Any) -> Any:
    try:
        return read()
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
