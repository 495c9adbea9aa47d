import pytest

from green_trainer.rapl import RaplCounter, counter_delta, discover_zones


def test_counter_delta_without_and_with_wrap():
    assert counter_delta(1_000, 5_000, 10_000) == 4_000
    assert counter_delta(9_000, 2_000, 10_000) == 3_000
    assert counter_delta(7, 7, 10_000) == 0


def test_discovery_counts_packages_and_dram_only(tmp_path, powercap, zone):
    root = powercap(
        tmp_path,
        {
            "intel-rapl:0": zone("package-0", 1_000),
            "intel-rapl:0:0": zone("core", 500),
            "intel-rapl:0:1": zone("uncore", 100),
            "intel-rapl:0:2": zone("dram", 300),
            "intel-rapl:1": zone("package-1", 2_000),
            "intel-rapl:2": zone("psys", 9_000),
            "intel-rapl-mmio:0": zone("package-0", 1_000),
        },
    )
    (root / "intel-rapl").mkdir()  # the control-type directory, not a zone
    found = {(z.path.name, z.name) for z in discover_zones(root)}
    assert found == {("intel-rapl:0", "package-0"), ("intel-rapl:0:2", "dram"), ("intel-rapl:1", "package-1")}


def test_unreadable_zones_and_missing_roots_give_nothing(tmp_path, powercap, zone):
    root = powercap(tmp_path, {"intel-rapl:0": zone("package-0", 1_000)})
    (root / "intel-rapl:0" / "energy_uj").unlink()
    (root / "intel-rapl:0" / "energy_uj").mkdir()  # reading it fails like a root-only file would
    assert discover_zones(root) == []
    assert discover_zones(tmp_path / "absent") == []


def test_counter_survives_wrap_around_at_max_energy_range(tmp_path, powercap, zone):
    root = powercap(
        tmp_path,
        {
            "intel-rapl:0": zone("package-0", 999_000_000, max_range_uj=1_000_000_000),
            "intel-rapl:0:2": zone("dram", 10_000_000),
        },
    )
    counter = RaplCounter(discover_zones(root))
    (root / "intel-rapl:0" / "energy_uj").write_text("4000000\n")  # wrapped: 1 J + 4 J
    (root / "intel-rapl:0:2" / "energy_uj").write_text("12000000\n")  # +2 J
    counter.sample()
    assert counter.joules == pytest.approx(7.0)
    (root / "intel-rapl:0" / "energy_uj").write_text("6000000\n")
    counter.sample()
    assert counter.joules == pytest.approx(9.0)


def test_a_zone_unreadable_mid_run_is_skipped_for_that_sample(tmp_path, powercap, zone, caplog):
    root = powercap(tmp_path, {"intel-rapl:0": zone("package-0", 1_000_000)})
    counter = RaplCounter(discover_zones(root))
    (root / "intel-rapl:0" / "energy_uj").write_text("garbage")
    counter.sample()
    assert counter.joules == 0.0
    assert "unreadable" in caplog.text
    (root / "intel-rapl:0" / "energy_uj").write_text("3000000")
    counter.sample()
    assert counter.joules == pytest.approx(2.0)


def test_counter_needs_zones():
    with pytest.raises(ValueError, match="discover_zones"):
        RaplCounter([])
