"""The node agent as a process: the real kube-apiserver (pods on a kwok node, watched as the chart's
ServiceAccount), the kubelet double over a unix socket, and fake GPUs whose state lives in a file, so a
killed agent's memory is gone and only the state file can bring limits back."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from green_trainer.fake_nvml import FakeNvmlFile, FileGpu, gpu_uuid
from harness.cluster import kubectl
from harness.waiting import wait_for
from tests.trainer.node_agent.cluster import AgentProcess, AgentRbac, chart_rbac, create_pod, delete_pod, kubelet

pytestmark = pytest.mark.integration

GPU = "nvidia.com/gpu"
ADMIN_LIMIT_MW = 600_000  # GPU 2's limit before any pod: an admin's choice, not the 700 W default


@pytest.fixture
def node() -> str:
    names = kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert names, "the local cluster has no nodes"
    return sorted(names)[0]


@pytest.fixture
def rbac(namespace: str, tmp_path: Path) -> Iterator[AgentRbac]:
    with chart_rbac(namespace, tmp_path) as r:
        yield r


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gna-"))  # a unix socket path must stay under 108 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def gpus(tmp_path: Path) -> FakeNvmlFile:
    gpus = [FileGpu(uuid=gpu_uuid(i)) for i in range(4)]
    gpus[2].limit_mw = ADMIN_LIMIT_MW
    return FakeNvmlFile(tmp_path / "nvml.json").create(gpus)


@pytest.fixture
def agent_factory(rbac: AgentRbac, node: str, short_dir: Path, gpus: FakeNvmlFile, tmp_path: Path) -> Iterator[object]:
    started: list[AgentProcess] = []

    def start(read_only: bool = False) -> AgentProcess:
        agent = AgentProcess(
            rbac, node, short_dir / "kubelet.sock", gpus, tmp_path / "state.json", tmp_path / "agent.log", read_only
        ).start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def limits(gpus: FakeNvmlFile) -> list[int]:
    return [g.limit_mw for g in gpus.gpus()]


def series(agent: AgentProcess, name: str) -> list[tuple[dict[str, str], float]]:
    text = agent.metrics() or ""
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_limits_reach_exactly_the_pods_gpus_and_are_restored_to_their_previous_values(
    namespace: str, node: str, short_dir: Path, gpus: FakeNvmlFile, agent_factory
) -> None:
    with kubelet(short_dir / "kubelet.sock") as k:
        create_pod(namespace, "train-0", node, "250")
        create_pod(namespace, "plain-0", node, None)  # no annotation: its GPU is never touched
        k.set_pod(namespace, "train-0", {"train": {GPU: [gpu_uuid(1), gpu_uuid(2)]}})
        k.set_pod(namespace, "plain-0", {"train": {GPU: [gpu_uuid(3)]}})
        agent = agent_factory()
        wait_for(lambda: limits(gpus) == [700_000, 250_000, 250_000, 700_000], timeout=30, message=agent.log)
        assert [g.set_calls for g in gpus.gpus()] == [[], [250_000], [250_000], []]

        # Per-pod energy and the limit's outcome, labelled to join dcgm-exporter and clash with no target label.
        def pod_energy() -> list[tuple[dict[str, str], float]]:
            return series(agent, "greentraining_pod_gpu_energy_joules_total")

        rows = wait_for(lambda: len(pod_energy()) == 3 and all(v > 0 for _, v in pod_energy()) and pod_energy())
        labels = {(r["pod_name"], r["UUID"]) for r, _ in rows}
        assert labels == {("train-0", gpu_uuid(1)), ("train-0", gpu_uuid(2)), ("plain-0", gpu_uuid(3))}
        for r, _ in rows:
            assert set(r) == {
                "pod_namespace", "pod_name", "container_name", "greentraining_job",
                "Hostname", "gpu", "UUID", "modelName", "meter",
            }  # fmt: skip
            assert (r["pod_namespace"], r["container_name"], r["greentraining_job"], r["Hostname"]) == (
                namespace, "train", "resnet", node,
            )  # fmt: skip
        applied = {r["UUID"]: (r["reason"], v) for r, v in series(agent, "greentraining_node_power_limit_applied")}
        assert applied == {gpu_uuid(1): ("Applied", 1.0), gpu_uuid(2): ("Applied", 1.0)}

        # The pod ends: the kubelet stops listing it and the API deletes it.
        k.remove_pod(namespace, "train-0")
        delete_pod(namespace, "train-0")
        wait_for(lambda: limits(gpus) == [700_000, 700_000, ADMIN_LIMIT_MW, 700_000], timeout=30, message=agent.log)
        # The entry goes once its GPU is back (after the NVML call): nothing is left to restore.
        wait_for(lambda: "GPU-" not in Path(agent.state_file).read_text(), timeout=10, message=agent.log)
    log = agent.log()
    assert "forbidden" not in log.lower()
    assert "pod watch" in log


def test_limits_are_restored_after_the_agent_is_killed_while_the_pod_runs(
    namespace: str, node: str, short_dir: Path, gpus: FakeNvmlFile, agent_factory
) -> None:
    with kubelet(short_dir / "kubelet.sock") as k:
        create_pod(namespace, "train-0", node, "300")
        k.set_pod(namespace, "train-0", {"train": {GPU: [gpu_uuid(2)]}})
        first = agent_factory()
        wait_for(lambda: limits(gpus)[2] == 300_000, timeout=30, message=first.log)
        first.kill()  # SIGKILL: no handler runs, nothing is restored on the way out
        k.remove_pod(namespace, "train-0")
        delete_pod(namespace, "train-0")
        wait_for(lambda: not kubectl("-n", namespace, "get", "pods", "-o", "name").stdout.strip(), timeout=30)
        assert limits(gpus)[2] == 300_000  # the GPU itself still holds the dead agent's limit
        second = agent_factory()
        wait_for(lambda: limits(gpus)[2] == ADMIN_LIMIT_MW, timeout=30, message=second.log)
        assert gpus.gpus()[2].set_calls == [300_000, ADMIN_LIMIT_MW]
        assert "1 GPU limit(s) to restore" in second.log()


def test_shared_and_mig_gpus_are_refused_out_of_range_clamped_and_garbage_reported(
    namespace: str, node: str, short_dir: Path, gpus: FakeNvmlFile, agent_factory
) -> None:
    with kubelet(short_dir / "kubelet.sock") as k:
        for name, limit in (("low", "120"), ("junk", "full power"), ("slice-a", "250"), ("slice-b", "250")):
            create_pod(namespace, name, node, limit)
        create_pod(namespace, "mig", node, "250")
        k.set_pod(namespace, "low", {"train": {GPU: [gpu_uuid(0)]}})
        k.set_pod(namespace, "junk", {"train": {GPU: [gpu_uuid(1)]}})
        k.set_pod(namespace, "slice-a", {"train": {GPU: [f"{gpu_uuid(2)}::0"]}})
        k.set_pod(namespace, "slice-b", {"train": {GPU: [f"{gpu_uuid(2)}::1"]}})
        k.set_pod(namespace, "mig", {"train": {"nvidia.com/mig-1g.10gb": ["MIG-0c1a7d2e-aaaa-bbbb-cccc-000000000001"]}})
        agent = agent_factory()
        wait_for(lambda: limits(gpus)[0] == 200_000, timeout=30, message=agent.log)

        def refused() -> dict[str, str]:
            return {r["pod_name"]: r["reason"] for r, _ in series(agent, "greentraining_node_refused_gpus")}

        assert wait_for(lambda: refused() == {"slice-a": "SharedGpu", "slice-b": "SharedGpu", "mig": "MigInstance"})
        bad = series(agent, "greentraining_node_invalid_annotations_total")
        assert [(r["pod_name"], v) for r, v in bad] == [("junk", 1.0)]
        applied = {r["pod_name"]: r["reason"] for r, _ in series(agent, "greentraining_node_power_limit_applied")}
        assert applied == {"low": "Clamped"}
        assert [g.set_calls for g in gpus.gpus()] == [[200_000], [], [], []]
        log = agent.log()
        assert "greentraining.io/gpu-power-limit-watts='full power' is not a power in watts" in log
        assert "shared GPU (time-slicing or MPS)" in log
        assert "MIG instance" in log


def test_read_only_agent_makes_no_limit_call(
    namespace: str, node: str, short_dir: Path, gpus: FakeNvmlFile, agent_factory
) -> None:
    with kubelet(short_dir / "kubelet.sock") as k:
        create_pod(namespace, "train-0", node, "250")
        k.set_pod(namespace, "train-0", {"train": {GPU: [gpu_uuid(1)]}})
        agent = agent_factory(read_only=True)
        reasons = wait_for(
            lambda: [r["reason"] for r, _ in series(agent, "greentraining_node_power_limit_applied")], timeout=30
        )
        assert reasons == ["ReadOnly"]
        assert [g.set_calls for g in gpus.gpus()] == [[], [], [], []]
        assert not Path(agent.state_file).exists()


def _can(rbac: AgentRbac, *args: str) -> bool:
    result = kubectl("auth", "can-i", *args, f"--as={rbac.user}", check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_the_agents_rbac_is_list_and_watch_pods_and_nothing_more(rbac: AgentRbac) -> None:
    for verb in ("list", "watch"):
        assert _can(rbac, verb, "pods", "--all-namespaces"), verb
    refused = [
        ("get", "pods"), ("create", "pods"), ("patch", "pods"), ("delete", "pods"), ("create", "pods/eviction"),
        ("get", "pods/log"), ("create", "pods/exec"), ("list", "secrets"), ("get", "configmaps"),
        ("list", "nodes"), ("patch", "nodes"), ("list", "greentrainingjobs.greentraining.io"),
        ("create", "events"), ("list", "jobs.batch"),
    ]  # fmt: skip
    granted = [r for r in refused if _can(rbac, *r, "--all-namespaces")]
    assert not granted, f"the node agent may do more than it needs: {granted}"
