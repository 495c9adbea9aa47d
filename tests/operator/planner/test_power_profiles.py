"""Power profiles: lookups by the names GPUs report, and curves with the documented shape."""

from __future__ import annotations

import itertools

import pytest

from green_operator.planner import PROFILES, PowerProfile, ProfilePoint, power_profile


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("NVIDIA-H100-80GB-HBM3", "H100-SXM"),
        ("h100", "H100-SXM"),
        ("NVIDIA-A100-SXM4-40GB", "A100-SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100-SXM"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA-L4", "L4"),
        ("NVIDIA H100 PCIe", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA A100-PCIE-40GB", None),
        ("NVIDIA L40S", None),
        ("unknown", None),
    ],
)
def test_lookup_by_reported_name(name: str, model: str | None) -> None:
    p = power_profile(name)
    assert (p.model if p else None) == model


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_curves_are_monotone_and_cited(profile: PowerProfile) -> None:
    limits = [p.limit_watts for p in profile.points]
    assert limits[0] == profile.min_limit_watts
    assert limits[-1] == profile.max_limit_watts
    throughput = [p.throughput for p in profile.points]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(throughput))
    assert throughput[-1] == 1.0
    # A binding limit always saves energy, never more than it costs in time.
    for x in limits[:-1]:
        if x < profile.binding_limit_watts:
            assert profile.energy_ratio(x) < 1.0
            assert profile.slowdown(x) > 1.0
    assert profile.source


def test_h100_numbers_match_the_documented_example() -> None:
    h100 = PROFILES["H100-SXM"]
    assert (h100.min_limit_watts, h100.max_limit_watts, h100.idle_watts) == (200.0, 700.0, 75.0)
    assert h100.slowdown(500) == pytest.approx(1.097, abs=0.005)
    assert h100.energy_ratio(500) == pytest.approx(0.844, abs=0.005)
    assert h100.slowdown(700) == 1.0
    assert h100.slowdown(680) == 1.0


def test_clamps_to_the_device_range() -> None:
    h100 = PROFILES["H100-SXM"]
    assert h100.clamp(100) == 200
    assert h100.clamp(900) == 700
    assert h100.average_watts(100) == h100.average_watts(200)


def test_rejects_points_that_do_not_span_the_range() -> None:
    with pytest.raises(ValueError, match="span"):
        PowerProfile("x", 300, 100, 10, (ProfilePoint(150, 0.8, 150), ProfilePoint(300, 1, 280)), "test")
    with pytest.raises(ValueError, match="sorted"):
        PowerProfile("x", 300, 100, 10, (ProfilePoint(300, 1, 280), ProfilePoint(100, 0.5, 100)), "test")
