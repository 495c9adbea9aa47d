"""The chart's JSON schema for `config` is generated from the configuration's pydantic models, so
`helm install/lint/template` refuses a bad configuration, naming the field, before any pod starts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from green_operator.config import ConfigError, parse_config
from harness.cluster import REPO
from tests.charts.chart import CHART, chart_args, helm

REGION = {"name": "r1", "carbon": {"provider": "uk", "zone": "national"}}


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_config_schema", REPO / "hack" / "gen_config_schema.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chart_schema_is_what_the_models_generate() -> None:
    current = (CHART / "values.schema.json").read_text()
    assert _generator().generate(current) == current, "run `make config-schema`"


def _config(providers: dict[str, Any], regions: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"providers": providers, "regions": regions or [REGION], **extra}


UK = {"uk": {"type": "ukcarbonintensity"}}

BAD: list[tuple[dict[str, Any], str, str]] = [
    (
        _config({**UK, "x": {"type": "electricitymaps", "timeoutSeconds": 0}}),
        "/config/providers/x/timeoutSeconds",
        "providers.x.timeoutSeconds: expected seconds in (0, 300]",
    ),
    (
        _config({**UK, "x": {"type": "watttime", "usernameEnv": "U"}}),
        "missing property 'passwordEnv'",
        "providers.x.passwordEnv: required",
    ),
    (
        _config({"uk": {"type": "ukcarbonintensity", "tokenEnv": "T"}}),
        "additional properties 'tokenEnv' not allowed",
        "providers.uk.tokenEnv: unknown field",
    ),
    (
        _config({**UK, "x": {"type": "emaps"}}),
        "/config/providers/x/type",
        "providers.x.type: unknown provider type 'emaps'",
    ),
    (
        _config({**UK, "t": {"type": "trace", "files": {"DE": "a.csv"}, "noiseFraction": 0.9}}),
        "/config/providers/t/noiseFraction",
        "providers.t.noiseFraction: expected a number in [0, 0.5)",
    ),
    (
        _config({**UK, "s": {"type": "carbonawaresdk"}}),
        "missing property 'baseUrl'",
        "providers.s.baseUrl: required",
    ),
    (
        _config(UK, carbon={"cacheTTL": "soon"}),
        "/config/carbon/cacheTTL",
        "carbon.cacheTTL: 'soon' is not a duration",
    ),
    (
        _config(UK, [{"name": "r1", "carbon": {"provider": "uk", "zone": "national", "staticGramsPerKwh": 5000}}]),
        "/config/regions/0/carbon/staticGramsPerKwh",
        "regions[0].carbon.staticGramsPerKwh: expected the region's annual average",
    ),
    (
        _config(UK, [{"name": "r1", "nodeSelector": {"zone": 1}}]),
        "/config/regions/0/nodeSelector/zone",
        "regions[0].nodeSelector must map label names to string values",
    ),
    (
        _config(UK, [{"name": "Bad_Name"}]),
        "/config/regions/0/name",
        "regions[0].name must be a DNS label",
    ),
    (
        _config(UK, planner={"hysteresis": 2}),
        "/config/planner/hysteresis",
        "planner.hysteresis must be a fraction in [0, 1)",
    ),
    (
        _config(UK, planner={"slott": "1m"}),
        "additional properties 'slott' not allowed",
        "planner: unknown key(s) ['slott']",
    ),
    (
        _config(UK, operator={"trainerMetricsPort": 70000}),
        "/config/operator/trainerMetricsPort",
        "operator.trainerMetricsPort must be a TCP port number (0 disables), got 70000",
    ),
    (
        _config(UK, prometheus={"url": "prometheus:9090"}),
        "/config/prometheus/url",
        "prometheus.url must be an http(s) URL",
    ),
]


@pytest.mark.parametrize(("config", "helm_says", "operator_says"), BAD, ids=[b[1] for b in BAD])
def test_helm_refuses_a_bad_configuration_naming_the_field(
    config: dict[str, Any], helm_says: str, operator_says: str, tmp_path: Path
) -> None:
    args, stdin = chart_args({"config": config})
    result = helm("template", "gto", str(CHART), *args, input=stdin, check=False)
    assert result.returncode != 0
    assert helm_says in result.stderr, result.stderr
    # The operator refuses the same configuration, in its own words.
    with pytest.raises(ConfigError) as refused:
        parse_config(config, base_dir=tmp_path)
    assert operator_says in str(refused.value)


def test_a_good_configuration_passes_helm_and_the_operator(tmp_path: Path) -> None:
    config = _config(
        {
            **UK,
            "e": {"type": "electricitymaps", "tokenFile": "/var/run/secrets/e/token", "timeoutSeconds": 5},
            "w": {"type": "watttime", "usernameEnv": "U", "passwordFile": "/var/run/secrets/w/password"},
        },
        carbon={"cacheTTL": "5m", "maxRetries": 3},
    )
    args, stdin = chart_args({"config": config})
    helm("template", "gto", str(CHART), *args, input=stdin)
    helm("lint", "--strict", str(CHART), *args, input=stdin)
    parse_config(config, base_dir=tmp_path)
