"""examples/operator-config-live.yaml and examples/values-live.yaml: every live provider with its Secret
reference and a fallback chain per region, valid for the operator, and the chart mounts the Secrets."""

from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from green_operator.carbon.config import TraceRef
from green_operator.carbon.credentials import SecretRef
from green_operator.carbon.electricitymaps import ElectricityMapsConfig
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService
from green_operator.carbon.watttime import WattTimeConfig
from green_operator.config import load_config, parse_config
from harness.cluster import REPO
from tests.charts.chart import IMAGE_TRACES, one, operator_config, render, with_local_traces

LIVE = REPO / "examples" / "operator-config-live.yaml"
VALUES = REPO / "examples" / "values-live.yaml"
LIVE_TYPES = {"electricitymaps", "watttime", "ukcarbonintensity", "carbonawaresdk"}


def test_the_demo_configuration_points_to_the_live_one() -> None:
    assert "examples/operator-config-live.yaml" in (REPO / "examples" / "operator-config.yaml").read_text()


def test_the_live_configuration_is_valid_with_every_live_provider_and_a_fallback_chain_per_region() -> None:
    cfg = load_config(LIVE)
    types = {pc.TYPE for pc in cfg.carbon.providers.values()}  # type: ignore[attr-defined]
    assert types >= LIVE_TYPES
    live = {name for name, pc in cfg.carbon.providers.items() if pc.TYPE in LIVE_TYPES}  # type: ignore[attr-defined]
    assert {r.provider for r in cfg.carbon.regions} == live
    for region in cfg.carbon.regions:
        assert isinstance(region.fallback_trace, TraceRef), region.region
        assert region.static.basis == "configured staticGramsPerKwh", region.region
    emaps = cfg.carbon.providers["electricitymaps"]
    assert isinstance(emaps, ElectricityMapsConfig)
    assert emaps.token == SecretRef(file=Path("/var/run/secrets/green-operator/electricitymaps-token"))
    wt = cfg.carbon.providers["watttime"]
    assert isinstance(wt, WattTimeConfig)
    assert (wt.username, wt.password) == (SecretRef(env="WATTTIME_USERNAME"), SecretRef(env="WATTTIME_PASSWORD"))
    # Its traces load, and the service builds without asking any provider (no credentials needed yet).
    service = CarbonService.from_config(cfg.carbon, metrics=CarbonMetrics(CollectorRegistry()))
    assert sorted(service.regions()) == sorted(cfg.region_names)
    service.close()


def test_the_live_values_carry_the_live_configuration() -> None:
    rendered = operator_config(render(extra=["--values", str(VALUES)]))
    example = yaml.safe_load(LIVE.read_text())
    for doc in (rendered, example):
        for provider in doc["providers"].values():
            if "files" in provider:
                provider["files"] = {zone: Path(f).name for zone, f in provider["files"].items()}
    for key in ("providers", "carbon", "regions", "planner"):
        assert rendered[key] == example[key], f"examples/values-live.yaml config.{key} differs from {LIVE.name}"
    # Its traces are the image's copies of the repository's, and they load.
    local = parse_config(with_local_traces(operator_config(render(extra=["--values", str(VALUES)]))))
    service = CarbonService.from_config(local.carbon, metrics=CarbonMetrics(CollectorRegistry()))
    assert sorted(service.regions()) == sorted(local.region_names)
    service.close()
    assert IMAGE_TRACES in VALUES.read_text()


def test_the_live_values_mount_every_secret_the_configuration_names() -> None:
    objs = render(extra=["--values", str(VALUES)])
    config = parse_config(operator_config(objs))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "operator")
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    refs = [
        ref
        for pc in config.carbon.providers.values()
        for ref in (getattr(pc, "token", None), getattr(pc, "username", None), getattr(pc, "password", None))
        if ref is not None
    ]
    assert len(refs) == 3
    for ref in refs:
        if ref.env is not None:
            assert env[ref.env]["name"] == "carbon-providers", ref
        else:
            assert ref.file is not None
            volume = volumes[mounts[str(ref.file.parent)]]
            assert volume["secret"]["secretName"] == "carbon-providers"
