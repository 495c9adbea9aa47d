"""Power options per policy, and the Auto choice."""

from __future__ import annotations

import itertools

import pytest

from green_operator.planner import (
    PROFILES,
    PowerPolicy,
    PowerRequest,
    choose_power_limit,
    power_options,
)

H100 = PROFILES["H100-SXM"]


def test_none_is_the_default_limit() -> None:
    (opt,) = power_options(H100, PowerRequest(PowerPolicy.NONE), 300.0)
    assert opt.limit_watts is None
    assert opt.slowdown == 1.0
    assert opt.watts == H100.default_watts


def test_fixed_is_clamped_and_priced_from_the_profile() -> None:
    (opt,) = power_options(H100, PowerRequest(PowerPolicy.FIXED, watts=100), 300.0)
    assert opt.limit_watts == 200.0
    assert opt.slowdown == pytest.approx(H100.slowdown(200))


def test_fixed_without_a_profile_assumes_no_slowdown() -> None:
    (opt,) = power_options(None, PowerRequest(PowerPolicy.FIXED, watts=250), 300.0)
    assert (opt.limit_watts, opt.watts, opt.slowdown) == (250, 250, 1.0)


def test_fixed_needs_watts() -> None:
    with pytest.raises(ValueError, match="gpuPowerLimitWatts"):
        power_options(H100, PowerRequest(PowerPolicy.FIXED), 300.0)


@pytest.mark.parametrize("max_slowdown", [0.0, 3.0, 10.0, 25.0])
def test_auto_stays_within_the_slowdown_and_only_keeps_energy_savers(max_slowdown: float) -> None:
    opts = power_options(H100, PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=max_slowdown), 300.0)
    assert opts[0].limit_watts is None
    assert all(o.slowdown <= 1 + max_slowdown / 100 + 1e-9 for o in opts)
    energies = [o.energy_per_work for o in opts]
    assert all(b < a for a, b in itertools.pairwise(energies))
    if max_slowdown == 0:
        assert len(opts) == 1


def test_auto_picks_the_least_energy_within_bounds() -> None:
    best = choose_power_limit(H100, PowerRequest(PowerPolicy.AUTO, max_slowdown_percent=10), 300.0)
    assert best.limit_watts is not None
    assert 480 <= best.limit_watts <= 520
    assert best.slowdown <= 1.10


def test_auto_without_a_profile_keeps_the_default() -> None:
    assert choose_power_limit(None, PowerRequest(PowerPolicy.AUTO), 300.0).limit_watts is None
