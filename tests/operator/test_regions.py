"""Capacity from nodes and forecasts on the planner's slot grid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.provider import DataSource, ForecastResult
from green_operator.carbon.series import series_from_values
from green_operator.config import RegionConfig
from green_operator.planner.grid import slot_floor
from green_operator.regions import NodeInfo, RegionCapacity, node_info, region_capacity, region_forecast

R = RegionConfig("europe-west3", {"topology.kubernetes.io/region": "europe-west3"})


def node(name: str, region: str, gpus: int, product: str = "NVIDIA-H100-80GB-HBM3", ok: bool = True) -> NodeInfo:
    return NodeInfo(name, {"topology.kubernetes.io/region": region, "nvidia.com/gpu.product": product}, gpus, ok)


def test_capacity_counts_schedulable_nodes_of_the_region() -> None:
    nodes = [
        node("a", "europe-west3", 8),
        node("b", "europe-west3", 8, ok=False),
        node("c", "europe-west3", 4, product="NVIDIA-L4"),
        node("d", "us-west2", 8),
    ]
    assert region_capacity(R, nodes) == RegionCapacity(12, "NVIDIA-H100-80GB-HBM3")
    assert region_capacity(RegionConfig("x", {"k": "v"}), nodes) == RegionCapacity(0, "unknown")
    override = RegionConfig("europe-west3", R.node_selector, gpu_model="A100")
    assert region_capacity(override, nodes).gpu_model == "A100"


def test_node_info_reads_a_node_object() -> None:
    n = node_info(
        {
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/region": "r"}},
            "spec": {"unschedulable": True},
            "status": {"allocatable": {"nvidia.com/gpu": "8", "cpu": "64"}},
        }
    )
    assert (n.name, n.allocatable_gpus, n.schedulable) == ("n1", 8, False)
    assert node_info({"metadata": {"name": "cpu"}, "status": {"allocatable": {}}}).allocatable_gpus == 0


def test_slot_floor_aligns_to_the_epoch() -> None:
    t = datetime(2026, 11, 25, 10, 7, 31, tzinfo=UTC)
    assert slot_floor(t, timedelta(minutes=15)) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert slot_floor(t, timedelta(seconds=5)) == datetime(2026, 11, 25, 10, 7, 30, tzinfo=UTC)


def test_forecast_is_time_weighted_onto_slots_and_gaps_are_filled_not_zeroed() -> None:
    start = datetime(2026, 11, 25, 10, tzinfo=UTC)
    series = series_from_values("DE", "trace", start, timedelta(minutes=30), [100.0, 300.0])
    result = ForecastResult("europe-west3", series, DataSource.LIVE, "trace", False)
    f = region_forecast(
        "europe-west3", RegionCapacity(8, "H100"), result, start, timedelta(minutes=20), timedelta(hours=2)
    )
    assert f.start == start
    assert len(f.intensity) == 6
    assert f.intensity[0] == pytest.approx(100.0)
    assert f.intensity[1] == pytest.approx((10 * 100 + 10 * 300) / 20)
    assert f.intensity[2] == pytest.approx(300.0)
    assert f.intensity[3:] == [pytest.approx(300.0)] * 3  # past the series: the last value, never zero


def test_node_capacity_counts_amd_gpus_and_never_mig_instances() -> None:
    def node(alloc: dict[str, str], product: str = "") -> NodeInfo:
        labels = {"nvidia.com/gpu.product": product} if product else {}
        return node_info({"metadata": {"name": "n", "labels": labels}, "status": {"allocatable": alloc}})

    assert node({"amd.com/gpu": "8"}).allocatable_gpus == 8
    assert node({"nvidia.com/gpu": "4", "nvidia.com/mig-1g.5gb": "7"}).allocatable_gpus == 4
    # MIG strategy `single` exposes instances as nvidia.com/gpu: not whole GPUs.
    assert node({"nvidia.com/gpu": "7"}, "A100-SXM4-40GB-MIG-1g.5gb").allocatable_gpus == 0
    assert node({"nvidia.com/gpu": "8"}, "NVIDIA-H100-80GB-HBM3").allocatable_gpus == 8
