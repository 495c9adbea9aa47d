"""The local control plane is real: scheduling by region, kwok pod lifecycle, Job completion, garbage
collection and RBAC, each checked against the running kube-apiserver and controllers."""

from __future__ import annotations

import pytest
from kubernetes import client

from harness.cluster import ClusterInfo, kubectl
from harness.waiting import wait_for

pytestmark = pytest.mark.integration


def _job(name: str, region: str, gpus: int = 1, annotations: dict[str, str] | None = None) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations or {}),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    node_selector={"topology.kubernetes.io/region": region},
                    containers=[
                        client.V1Container(
                            name="train",
                            image="example.invalid/train:1",
                            resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)}),
                        )
                    ],
                ),
            ),
        ),
    )


def test_nodes_span_regions_with_gpus(cluster: ClusterInfo) -> None:
    nodes = client.CoreV1Api().list_node().items
    regions = {n.metadata.labels["topology.kubernetes.io/region"] for n in nodes}
    assert len(regions) >= 4
    for n in nodes:
        assert int(n.status.allocatable["nvidia.com/gpu"]) > 0
        assert n.metadata.labels["topology.kubernetes.io/zone"].startswith(
            n.metadata.labels["topology.kubernetes.io/region"]
        )
        assert n.metadata.labels["nvidia.com/gpu.product"]
        ready = [c for c in n.status.conditions if c.type == "Ready"]
        assert ready
        assert ready[0].status == "True"


def test_job_is_scheduled_into_its_region_and_completes(namespace: str) -> None:
    batch, core = client.BatchV1Api(), client.CoreV1Api()
    # Annotation read by our kwok stage: keep the pod Running long enough to observe it.
    job = _job("train", "europe-west9", annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "3s"})
    batch.create_namespaced_job(namespace, job)

    def running_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=train").items
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod = wait_for(running_pod, timeout=30, message="the Job's pod to run")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["topology.kubernetes.io/region"] == "europe-west9"

    def complete() -> bool:
        st = batch.read_namespaced_job_status("train", namespace).status
        return any(c.type == "Complete" and c.status == "True" for c in st.conditions or [])

    wait_for(complete, timeout=30, message="the Job to complete")
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=train").items
    assert [p.status.phase for p in pods] == ["Succeeded"]


def test_pod_failure_and_termination_message_follow_annotations(namespace: str) -> None:
    batch, core = client.BatchV1Api(), client.CoreV1Api()
    job = _job(
        "fails",
        "us-west2",
        annotations={
            "kwok.greentraining.io/exit-code": "3",
            "kwok.greentraining.io/termination-message": '{"v":1,"energyJoules":12.5}',
        },
    )
    batch.create_namespaced_job(namespace, job)

    def failed() -> bool:
        st = batch.read_namespaced_job_status("fails", namespace).status
        return any(c.type == "Failed" and c.status == "True" for c in st.conditions or [])

    wait_for(failed, timeout=30, message="the Job to fail")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=fails").items[0]
    term = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed"
    assert term.exit_code == 3
    assert term.message == '{"v":1,"energyJoules":12.5}'


def test_unschedulable_when_region_lacks_gpus(namespace: str) -> None:
    batch, core = client.BatchV1Api(), client.CoreV1Api()
    batch.create_namespaced_job(namespace, _job("toobig", "us-west2", gpus=64))

    def unschedulable() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=toobig").items
        return bool(pods) and any(
            c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            for c in pods[0].status.conditions or []
        )

    wait_for(unschedulable, timeout=30, message="the scheduler to report the pod unschedulable")


def test_deleting_an_owner_garbage_collects_its_children(namespace: str) -> None:
    core = client.CoreV1Api()
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"k": "v"})
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, block_owner_deletion=True
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
        return "child" not in names

    wait_for(child_gone, timeout=30, message="the garbage collector to delete the child")


def test_rbac_refuses_what_a_role_does_not_grant(namespace: str) -> None:
    core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )
    who = f"system:serviceaccount:{namespace}:reader"
    allowed = kubectl("get", "pods", "-n", namespace, "--as", who, check=False)
    assert allowed.returncode == 0, allowed.stderr
    refused = kubectl("get", "secrets", "-n", namespace, "--as", who, check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    refused_write = kubectl("create", "configmap", "x", "-n", namespace, "--from-literal=a=b", "--as", who, check=False)
    assert refused_write.returncode != 0
    assert "forbidden" in refused_write.stderr.lower()
