"""Operator configuration: the example loads; every error names its field and the fix."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from green_operator.config import ConfigError, OperatorConfig, load_config, parse_config
from tests.support.fuzz import json_values, mutated

REPO = Path(__file__).resolve().parents[2]


def test_the_example_configuration_loads() -> None:
    cfg = load_config(REPO / "examples" / "operator-config.yaml")
    assert cfg.region_names == ("europe-west2", "europe-west3", "europe-west9", "us-west2")
    assert cfg.region("europe-west3").node_selector == {"topology.kubernetes.io/region": "europe-west3"}  # type: ignore[union-attr]
    assert cfg.planner.slot == timedelta(minutes=15)
    assert cfg.replan_interval == timedelta(minutes=10)
    assert cfg.planner.reserve_fraction == 0.2


def test_planner_reserve_is_configurable() -> None:
    cfg = parse_config({"regions": [{"name": "r1"}], "planner": {"reserveFraction": 0, "reserveRamp": "2h"}})
    assert cfg.planner.reserve_fraction == 0
    assert cfg.planner.reserve_ramp == timedelta(hours=2)


def test_joint_replan_and_extrapolation_are_configurable() -> None:
    default = parse_config({"regions": [{"name": "r1"}]})
    assert default.joint is None  # off unless jointReplanMaxMoves is set
    assert default.planner.extrapolation == timedelta(0)
    on = parse_config({"regions": [{"name": "r1"}], "planner": {"jointReplanMaxMoves": 100}})
    assert on.joint is not None
    assert (on.joint.budget, on.joint.max_moves) == (timedelta(seconds=3), 100)
    doc = {"jointReplanBudget": "5s", "jointReplanMaxMoves": 7, "extrapolation": "48h"}
    cfg = parse_config({"regions": [{"name": "r1"}], "planner": doc})
    assert cfg.joint is not None
    assert (cfg.joint.budget, cfg.joint.max_moves) == (timedelta(seconds=5), 7)
    assert cfg.planner.extrapolation == timedelta(hours=48)
    off = parse_config({"regions": [{"name": "r1"}], "planner": {"jointReplanMaxMoves": 0}})
    assert off.joint is None
    with pytest.raises(ConfigError, match="jointReplanMaxMoves"):
        parse_config({"regions": [{"name": "r1"}], "planner": {"jointReplanMaxMoves": -1}})


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"regions": [{"name": "r1"}]}
    doc.update(extra)
    return doc


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        ({}, "regions must be a non-empty list"),
        ({"regions": [{"name": "Bad_Name"}]}, "regions[0].name must be a DNS label"),
        ({"regions": [{"name": "a"}, {"name": "a"}]}, "duplicate region"),
        ({"regions": [{"name": "a", "nodeSelector": {"k": 1}}]}, "regions[0].nodeSelector must map"),
        ({"regions": [{"name": "a", "tolerations": "none"}]}, "regions[0].tolerations must be a list"),
        (minimal(planner={"slot": "fast"}), "planner.slot"),
        (minimal(planner={"slot": "1h", "horizon": "30m"}), "planner.horizon must be at least one planner.slot"),
        (minimal(planner={"hysteresis": 2}), "planner.hysteresis must be a fraction"),
        (minimal(planner={"reserveFraction": 1.5}), "planner.reserveFraction must be a fraction"),
        (minimal(planner={"referenceGpuModel": "TPUv5"}), "planner.referenceGpuModel: 'TPUv5' is not a GPU model"),
        (minimal(planner={"defaultGpuWatts": -1}), "planner.defaultGpuWatts"),
        (minimal(planner={"slott": "1m"}), "planner: unknown key(s) ['slott']"),
        (minimal(operator={"metricsPort": 70000}), "operator.metricsPort must be a TCP port"),
        (minimal(operator={"watchNamespaces": ["Not OK"]}), "operator.watchNamespaces"),
        (minimal(extras=1), "unknown top-level key(s) ['extras']"),
        ({"regions": [{"name": "a", "carbon": {"provider": "nope", "zone": "X"}}]}, "unknown provider 'nope'"),
    ],
)
def test_errors_name_the_field(doc: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert text in str(err.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text(yaml.safe_dump("hello"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)


@pytest.mark.parametrize(
    ("regions", "text"),
    [
        ([{"name": "Bad_Name"}], "regions[0].name must be a DNS label such as europe-west3, got 'Bad_Name'"),
        ([{"name": "a"}, {"name": "a"}], "regions[1].name: duplicate region 'a'; region names must be unique"),
        ([{"carbon": {}}], "regions[0].name: required; the region's name"),
        ({"name": "a"}, "regions: expected a list of regions, got dict"),
    ],
)
def test_the_operator_and_the_carbon_configuration_read_region_names_by_one_rule(regions: Any, text: str) -> None:
    from green_operator.carbon.config import CarbonConfigError, parse_carbon_config

    with pytest.raises(ConfigError) as operator_err:
        parse_config({"regions": regions})
    with pytest.raises(CarbonConfigError) as carbon_err:
        parse_carbon_config({"regions": regions})
    assert str(operator_err.value) == str(carbon_err.value)
    assert str(carbon_err.value).startswith(text)


# -- fuzzing: any YAML document (mutations of the shipped example, any JSON, any text) loads or
# raises ConfigError naming what is wrong; never another exception.

EXAMPLE = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())


@given(doc=mutated(EXAMPLE) | json_values)
def test_any_document_parses_or_is_a_config_error(doc: Any) -> None:
    try:
        cfg = parse_config(doc if isinstance(doc, dict) else {"regions": doc}, REPO / "examples")
    except ConfigError as err:
        event("refused")
        message = str(err)
    else:
        event("parsed")
        message = ", ".join(cfg.region_names)
        assert isinstance(cfg, OperatorConfig)
    assert message  # an error names what is wrong; a configuration has regions


@given(text=st.text(max_size=200) | mutated(EXAMPLE).map(lambda d: yaml.safe_dump(d)))
def test_any_file_loads_or_is_a_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "operator-config.yaml"
        path.write_text(text)
        try:
            message = ", ".join(load_config(path).region_names)
        except ConfigError as err:
            message = str(err)
    assert message


def two_regions(multikueue: Any) -> dict[str, Any]:
    return {"regions": [{"name": "north"}, {"name": "south"}], "multiKueue": multikueue}


def test_multikueue_workers_map_clusters_to_regions_with_kubeconfigs_beside_the_file() -> None:
    cfg = parse_config(
        two_regions(
            {
                "enabled": True,
                "workerLostTimeout": "2m",
                "probeInterval": "5s",
                "workers": [
                    {"cluster": "worker-n", "region": "north", "kubeconfig": "/etc/w/n/kubeconfig"},
                    {"cluster": "worker-s", "region": "south", "kubeconfig": "s.kubeconfig"},
                ],
            }
        ),
        base_dir="/etc/green",
    )
    assert cfg.multikueue_enabled
    assert cfg.multikueue.worker_lost_timeout == timedelta(minutes=2)
    assert cfg.multikueue.probe_interval == timedelta(seconds=5)
    assert [(w.cluster, w.region, str(w.kubeconfig)) for w in cfg.workers] == [
        ("worker-n", "north", "/etc/w/n/kubeconfig"),
        ("worker-s", "south", "/etc/green/s.kubeconfig"),
    ]


def test_multikueue_is_off_by_default() -> None:
    cfg = parse_config(minimal())
    assert not cfg.multikueue_enabled
    assert cfg.workers == ()


W = {"cluster": "worker-n", "region": "north", "kubeconfig": "/k"}


@pytest.mark.parametrize(
    ("multikueue", "text"),
    [
        ({"enabled": True}, "multiKueue.workers: the dispatcher needs at least one worker"),
        ({"workers": [{**W, "region": "east"}]}, "multiKueue.workers[0].region: 'east' is not a configured region"),
        (
            {"workers": [{k: v for k, v in W.items() if k != "kubeconfig"}]},
            "multiKueue.workers[0].kubeconfig: required",
        ),
        ({"workers": [{**W, "cluster": "Worker_N"}]}, "multiKueue.workers[0].cluster must be a MultiKueueCluster name"),
        ({"workers": [W, {**W, "region": "south"}]}, "multiKueue.workers[1].cluster: 'worker-n' is listed twice"),
        ({"workers": [W, {**W, "cluster": "other"}]}, "multiKueue.workers[1].region: 'north' is already worker"),
        ({"workers": [{**W, "extra": 1}]}, "multiKueue.workers[0]: unknown key(s) ['extra']"),
        ({"workerLostTimeout": "soon"}, "multiKueue.workerLostTimeout: 'soon' is not a duration"),
        ({"workers": "all"}, "multiKueue.workers must be a list"),
    ],
)
def test_multikueue_errors_name_the_field_and_the_fix(multikueue: Any, text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(two_regions(multikueue))
    assert text in str(exc.value)
