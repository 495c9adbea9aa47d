"""Pods to physical GPUs: exclusive whole GPUs only; shared, MIG and unknown devices refused with a reason."""

from __future__ import annotations

from green_trainer.node_agent.holdings import Holder, PodKey, Refusal, gpu_holdings
from green_trainer.node_agent.podresources import ContainerDevices

UUIDS = ["GPU-0", "GPU-1", "GPU-2", "GPU-3"]


def row(pod: str, resource: str, *ids: str, container: str = "train") -> ContainerDevices:
    return ContainerDevices("ml", pod, container, resource, ids)


def test_whole_gpus_by_uuid_or_index_are_exclusive_to_their_container() -> None:
    h = gpu_holdings([row("a", "nvidia.com/gpu", "GPU-0", "GPU-1"), row("b", "nvidia.com/gpu", "3")], UUIDS)
    assert h.exclusive == {
        "GPU-0": Holder(PodKey("ml", "a"), "train"),
        "GPU-1": Holder(PodKey("ml", "a"), "train"),
        "GPU-3": Holder(PodKey("ml", "b"), "train"),
    }
    assert h.refused == ()


def test_time_slicing_mps_and_shared_resources_are_refused() -> None:
    h = gpu_holdings(
        [
            row("a", "nvidia.com/gpu", "GPU-0::0"),
            row("b", "nvidia.com/gpu", "GPU-0::1"),
            row("c", "nvidia.com/gpu.shared", "GPU-1"),
        ],
        UUIDS,
    )
    assert h.exclusive == {}
    assert [(r.holder.pod.name, r.reason) for r in h.refused] == [
        ("a", Refusal.SHARED),
        ("b", Refusal.SHARED),
        ("c", Refusal.SHARED),
    ]
    assert "time-slicing or MPS" in h.refused[0].message


def test_one_gpu_listed_for_two_containers_is_shared_and_refused_for_both() -> None:
    h = gpu_holdings([row("a", "nvidia.com/gpu", "GPU-2"), row("a", "nvidia.com/gpu", "GPU-2", container="x")], UUIDS)
    assert "GPU-2" not in h.exclusive
    assert {(r.holder.container, r.reason) for r in h.refused} == {("train", Refusal.SHARED), ("x", Refusal.SHARED)}


def test_mig_instances_are_refused_whichever_strategy_names_them() -> None:
    h = gpu_holdings([row("a", "nvidia.com/mig-1g.10gb", "MIG-aaaa"), row("b", "nvidia.com/gpu", "MIG-bbbb")], UUIDS)
    assert h.exclusive == {}
    assert [r.reason for r in h.refused] == [Refusal.MIG, Refusal.MIG]
    assert "whole physical GPU" in h.refused[0].message


def test_unknown_ids_are_refused_and_other_vendors_ignored() -> None:
    h = gpu_holdings([row("a", "nvidia.com/gpu", "GPU-9"), row("a", "amd.com/gpu", "card0")], UUIDS)
    assert h.exclusive == {}
    assert [(r.device, r.reason) for r in h.refused] == [("GPU-9", Refusal.UNKNOWN)]
