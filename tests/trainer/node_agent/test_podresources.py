"""The generated client against a real gRPC server over a unix socket (the kubelet double)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from green_trainer.node_agent.podresources import ContainerDevices, PodResourcesClient
from harness.kubelet import FakeKubelet


def test_list_flattens_pods_containers_and_resources_with_devices(tmp_path: Path) -> None:
    kubelet = FakeKubelet(tmp_path / "kubelet.sock").start()
    client = PodResourcesClient(str(kubelet.socket_path))
    try:
        kubelet.set_pod("ml", "train-0", {"train": {"nvidia.com/gpu": ["GPU-a", "GPU-b"]}, "sidecar": {}})
        kubelet.set_pod("ml", "cpu-only", {"main": {}})
        kubelet.set_pod("ml", "mig", {"main": {"nvidia.com/mig-1g.10gb": ["MIG-x"], "example.com/fpga": ["f0"]}})
        rows = client.list()
    finally:
        client.close()
        kubelet.stop()
    assert sorted(rows, key=lambda r: (r.pod, r.resource)) == [
        ContainerDevices("ml", "mig", "main", "example.com/fpga", ("f0",)),
        ContainerDevices("ml", "mig", "main", "nvidia.com/mig-1g.10gb", ("MIG-x",)),
        ContainerDevices("ml", "train-0", "train", "nvidia.com/gpu", ("GPU-a", "GPU-b")),
    ]


def test_a_missing_socket_is_an_rpc_error(tmp_path: Path) -> None:
    client = PodResourcesClient(str(tmp_path / "absent.sock"), timeout_seconds=0.5)
    with pytest.raises(grpc.RpcError):
        client.list()
    client.close()
