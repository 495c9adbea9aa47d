"""One poll end to end in-process: per-pod energy goes to the holder, metrics carry the dcgm-joinable
labels and no label Prometheus reserves for targets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prometheus_client.core import Sample

from green_trainer.fake_nvml import FakeNvmlFile, FileGpu, FileNvml, gpu_uuid
from green_trainer.node_agent.agent import NodeAgent
from green_trainer.node_agent.apply import LimitApplier
from green_trainer.node_agent.holdings import PodKey
from green_trainer.node_agent.metrics import metric_families
from green_trainer.node_agent.podresources import ContainerDevices
from green_trainer.node_agent.pods import PodInfo
from green_trainer.node_agent.state import StateFile
from green_trainer.nvml import open_gpus

TARGET_LABELS = {"job", "namespace", "pod", "instance", "container"}


class Rows:
    def __init__(self) -> None:
        self.rows: list[ContainerDevices] = []

    def list(self) -> list[ContainerDevices]:
        return list(self.rows)


class Pods:
    def __init__(self) -> None:
        self.pods: dict[PodKey, PodInfo] = {}

    def snapshot(self) -> Mapping[PodKey, PodInfo] | None:
        return dict(self.pods)


def setup(tmp_path: Path, read_only: bool = False) -> tuple[NodeAgent, FakeNvmlFile, Rows, Pods]:
    f = FakeNvmlFile(tmp_path / "nvml.json").create([FileGpu(uuid=gpu_uuid(i), power_mw=0) for i in range(3)])
    nvml = FileNvml(f.path)
    gpus, _ = open_gpus(nvml, None, None)
    state = None if read_only else StateFile(tmp_path / "state.json")
    applier = LimitApplier(nvml, {g.uuid: g.handle for g in gpus}, state, read_only)
    rows, pods = Rows(), Pods()
    return NodeAgent(nvml, gpus, rows, pods, applier, hostname="gpu-node-1"), f, rows, pods


def add_energy(f: FakeNvmlFile, index: int, mj: int) -> None:
    def change(gpus: list[FileGpu]) -> None:
        gpus[index].energy_mj += mj

    f.update(change)


def samples(agent: NodeAgent) -> list[Sample]:
    return [s for family in metric_families(agent.view()) for s in family.samples]


def test_energy_of_a_gpu_goes_to_the_pod_holding_it_with_joinable_labels(tmp_path: Path) -> None:
    agent, f, rows, pods = setup(tmp_path)
    key = PodKey("ml", "resnet-0")
    pods.pods[key] = PodInfo(key, "u1", "250", "resnet", terminal=False)
    rows.rows = [ContainerDevices("ml", "resnet-0", "train", "nvidia.com/gpu", (gpu_uuid(1),))]
    agent.tick()
    add_energy(f, 1, 5_000_000)  # 5 kJ on the pod's GPU
    add_energy(f, 2, 7_000_000)  # 7 kJ on a GPU no pod holds
    agent.tick()
    pod_series = [s for s in samples(agent) if s.name == "greentraining_pod_gpu_energy_joules_total"]
    (series,) = pod_series
    assert series.value == 5000.0
    assert series.labels == {
        "pod_namespace": "ml",
        "pod_name": "resnet-0",
        "container_name": "train",
        "greentraining_job": "resnet",
        "Hostname": "gpu-node-1",
        "gpu": "1",
        "UUID": gpu_uuid(1),
        "modelName": "NVIDIA H100 80GB HBM3",
        "meter": "nvml",
    }
    node = {s.labels["UUID"]: s.value for s in samples(agent) if s.name == "greentraining_node_gpu_energy_joules_total"}
    assert node == {gpu_uuid(0): 0.0, gpu_uuid(1): 5000.0, gpu_uuid(2): 7000.0}
    applied = [s for s in samples(agent) if s.name == "greentraining_node_power_limit_applied"]
    assert [(s.labels["UUID"], s.labels["reason"], s.value) for s in applied] == [(gpu_uuid(1), "Applied", 1.0)]
    assert f.gpus()[1].limit_mw == 250_000
    for s in samples(agent):
        assert not TARGET_LABELS & set(s.labels), (s.name, s.labels)


def test_refusals_and_garbage_annotations_show_in_metrics_once(tmp_path: Path) -> None:
    agent, f, rows, pods = setup(tmp_path)
    a, b = PodKey("ml", "a"), PodKey("ml", "b")
    pods.pods = {a: PodInfo(a, "ua", "lots", "ja", False), b: PodInfo(b, "ub", "250", "jb", False)}
    rows.rows = [
        ContainerDevices("ml", "a", "train", "nvidia.com/gpu", (gpu_uuid(0),)),
        ContainerDevices("ml", "b", "train", "nvidia.com/gpu", (f"{gpu_uuid(1)}::0",)),
    ]
    agent.tick()
    agent.tick()
    by_name: dict[str, list[Sample]] = {}
    for s in samples(agent):
        by_name.setdefault(s.name, []).append(s)
    (bad,) = by_name["greentraining_node_invalid_annotations_total"]
    assert (bad.labels["pod_name"], bad.labels["greentraining_job"], bad.value) == ("a", "ja", 1.0)
    (refused,) = by_name["greentraining_node_refused_gpus"]
    assert (refused.labels["pod_name"], refused.labels["reason"]) == ("b", "SharedGpu")
    assert [g.set_calls for g in f.gpus()] == [[], [], []]


def test_read_only_agent_meters_but_never_sets(tmp_path: Path) -> None:
    agent, f, rows, pods = setup(tmp_path, read_only=True)
    key = PodKey("ml", "a")
    pods.pods[key] = PodInfo(key, "u1", "250", "j", False)
    rows.rows = [ContainerDevices("ml", "a", "train", "nvidia.com/gpu", (gpu_uuid(0),))]
    agent.tick()
    add_energy(f, 0, 1_000_000)
    agent.tick()
    values = {s.name: s for s in samples(agent)}
    assert values["greentraining_pod_gpu_energy_joules_total"].value == 1000.0
    assert values["greentraining_node_power_limit_applied"].labels["reason"] == "ReadOnly"
    assert values["greentraining_node_agent_read_only"].value == 1.0
    assert [g.set_calls for g in f.gpus()] == [[], [], []]
