from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from green_operator.carbon.carbon_aware_sdk import CarbonAwareSdkConfig
from green_operator.carbon.config import CarbonConfigError, TraceRef, parse_carbon_config
from green_operator.carbon.credentials import SecretRef
from green_operator.carbon.electricitymaps import ElectricityMapsConfig
from green_operator.carbon.series import SignalKind
from green_operator.carbon.static_factors import GLOBAL_AVERAGE_G_PER_KWH
from green_operator.carbon.trace_provider import TraceConfig
from green_operator.carbon.ukci import UKCarbonIntensityConfig
from green_operator.carbon.watttime import WattTimeConfig

EXAMPLE = """
providers:
  emaps:
    type: electricitymaps
    baseUrl: "https://api.electricitymaps.com/v3/"
    tokenFile: secrets/emaps
    emissionFactorType: lifecycle
    timeoutSeconds: 10
  wt:    {type: watttime, usernameEnv: WT_USER, passwordFile: /var/run/secrets/wt/password, signalType: co2_moer}
  uk:    {type: ukcarbonintensity}
  sdk:   {type: carbonawaresdk, baseUrl: "http://carbon-aware-sdk", units: lbsPerMWh}
  demo:
    type: trace
    files: {DE: data/carbon/lwa_ger_2020.csv, GB: /abs/gb.csv}
    shift: toNow
    anchor: "2020-06-01T00:00:00Z"
    noiseFraction: 0.05
    seed: 1
carbon:
  cacheTTL: 5m
  staleAfter: 1h30m
  requestTimeout: 3s
  retryBackoff: 10s
  maxRetries: 1
operator: {namespace: x}        # someone else's section: ignored here
regions:
  - name: europe-north1
    nodeSelector: {topology.kubernetes.io/region: europe-north1}
    gpuModel: H100
    carbon:
      provider: emaps
      zone: FI
      fallbackTrace: {provider: demo, zone: DE}
      staticGramsPerKwh: 85
  - name: us-west1
    carbon: {provider: wt, zone: CAISO_NORTH}
  - name: london
    carbon: {provider: uk, zone: 13}
  - name: uk-national
    carbon: {provider: uk, zone: national}
  - name: uksouth
    carbon: {provider: sdk, zone: uksouth}
  - name: europe-west4
  - name: demo-de
    carbon: {provider: demo, zone: DE}
"""


def parse(text: str, base_dir: Path | str = "/etc/gto"):
    return parse_carbon_config(yaml.safe_load(text), base_dir=base_dir)


def test_full_example():
    cfg = parse(EXAMPLE)
    em = cfg.providers["emaps"]
    assert isinstance(em, ElectricityMapsConfig)
    assert em.token == SecretRef(file=Path("/etc/gto/secrets/emaps"))
    assert em.emission_factor_type == "lifecycle"
    assert em.timeout == timedelta(seconds=10)
    wt = cfg.providers["wt"]
    assert isinstance(wt, WattTimeConfig)
    assert wt.username == SecretRef(env="WT_USER")
    assert wt.password == SecretRef(file=Path("/var/run/secrets/wt/password"))
    assert wt.base_url == "https://api.watttime.org"
    assert isinstance(cfg.providers["uk"], UKCarbonIntensityConfig)
    sdk = cfg.providers["sdk"]
    assert isinstance(sdk, CarbonAwareSdkConfig)
    assert sdk.scale == pytest.approx(0.453592)
    assert sdk.signal is SignalKind.MARGINAL  # lbs/MWh means a WattTime-backed SDK unless told otherwise
    demo = cfg.providers["demo"]
    assert isinstance(demo, TraceConfig)
    assert demo.files == {"DE": Path("/etc/gto/data/carbon/lwa_ger_2020.csv"), "GB": Path("/abs/gb.csv")}
    assert demo.anchor == datetime(2020, 6, 1, tzinfo=UTC)
    assert (demo.shift, demo.noise_fraction, demo.seed) == ("toNow", 0.05, 1)

    s = cfg.settings
    assert (s.cache_ttl, s.stale_after, s.request_timeout) == (
        timedelta(minutes=5),
        timedelta(minutes=90),
        timedelta(seconds=3),
    )
    assert (s.retry_backoff, s.max_retries) == (timedelta(seconds=10), 1)
    assert s.forecast_horizon == timedelta(hours=48)  # default

    assert [r.region for r in cfg.regions] == [
        "europe-north1",
        "us-west1",
        "london",
        "uk-national",
        "uksouth",
        "europe-west4",
        "demo-de",
    ]
    fi = cfg.region("europe-north1")
    assert (fi.provider, fi.zone, fi.fallback_trace) == ("emaps", "FI", TraceRef("demo", "DE"))
    assert fi.static.grams_per_kwh == 85
    assert fi.static.basis == "configured staticGramsPerKwh"
    assert cfg.region("london").zone == "13"


def test_static_defaults_by_zone_cloud_region_and_global():
    cfg = parse(EXAMPLE)
    assert cfg.region("us-west1").static.grams_per_kwh == 12.9  # CAISO_NORTH is no country: GCP us-west1
    assert "cloud region us-west1" in cfg.region("us-west1").static.basis
    assert cfg.region("uk-national").static.grams_per_kwh == 268.3  # national UK zone -> GB
    assert cfg.region("london").static.grams_per_kwh == GLOBAL_AVERAGE_G_PER_KWH  # '13' and 'london' unknown
    assert cfg.region("london").static.basis == "global average (IEA 2019)"
    assert cfg.region("uksouth").static.grams_per_kwh == 623.0  # Azure uksouth
    assert cfg.region("europe-west4").static.grams_per_kwh == 184.9  # no carbon section at all
    assert cfg.region("europe-west4").provider is None
    assert cfg.region("demo-de").static.grams_per_kwh == 365.5  # Germany 2021
    sub = parse("regions: [{name: r, carbon: {provider: e, zone: SE-SE3}}]\nproviders: {e: {type: electricitymaps}}")
    assert sub.region("r").static.grams_per_kwh == 45.8  # sub-zone -> country


def test_defaults_and_empty_document():
    cfg = parse_carbon_config({})
    assert cfg.providers == {}
    assert cfg.regions == ()
    assert cfg.settings.cache_ttl == timedelta(minutes=10)
    assert cfg.settings.stale_after == timedelta(hours=2)


def test_relative_paths_default_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_carbon_config({"providers": {"d": {"type": "trace", "files": {"X": "x.csv"}}}})
    trace = cfg.providers["d"]
    assert isinstance(trace, TraceConfig)
    assert trace.files["X"] == tmp_path / "x.csv"


def test_repr_never_contains_secret_values(monkeypatch, tmp_path):
    monkeypatch.setenv("WT_USER", "alice-user-value")
    monkeypatch.setenv("WT_PASS", "hunter2-password-value")
    (tmp_path / "tok").write_text("emaps-token-value")
    cfg = parse(
        "providers:\n"
        "  wt: {type: watttime, usernameEnv: WT_USER, passwordEnv: WT_PASS}\n"
        "  em: {type: electricitymaps, tokenFile: tok}\n",
        base_dir=tmp_path,
    )
    text = repr(cfg)
    for secret in ("alice-user-value", "hunter2-password-value", "emaps-token-value"):
        assert secret not in text
    assert "WT_PASS" in text


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            "providers: {electricitymaps: {type: electricitymaps}, ukci: {type: ukcarbonintensity}}\n"
            "regions: [{name: a}, {name: b}, {name: c, carbon: {provider: emaps, zone: FI}}]",
            "regions[2].carbon.provider: unknown provider 'emaps'; known: electricitymaps, ukci",
        ),
        ("providers: {x: {type: emaps}}", "providers.x.type: unknown provider type 'emaps'; known: electricitymaps"),
        (
            "providers: {x: {type: electricitymaps, tokenfile: /t}}",
            "providers.x.tokenfile: unknown field; known fields:",
        ),
        (
            "providers: {x: {type: electricitymaps, tokenEnv: A, tokenFile: /t}}",
            "providers.x.tokenEnv: set either tokenEnv or tokenFile",
        ),
        ("providers: {x: {type: watttime, usernameEnv: U}}", "providers.x.passwordEnv: required"),
        (
            "providers: {x: {type: watttime, usernameEnv: U, passwordEnv: P, signalType: health_damage}}",
            "providers.x.signalType: must be one of",
        ),
        (
            "providers: {x: {type: electricitymaps, baseUrl: api.electricitymaps.com}}",
            "providers.x.baseUrl: expected an http(s) URL",
        ),
        (
            "providers: {x: {type: electricitymaps, emissionFactorType: total}}",
            "providers.x.emissionFactorType: must be 'lifecycle' or 'direct'",
        ),
        ("providers: {x: {type: electricitymaps, timeoutSeconds: 0}}", "providers.x.timeoutSeconds: expected seconds"),
        ("providers: {x: {type: carbonawaresdk}}", "providers.x.baseUrl: required"),
        (
            "providers: {x: {type: carbonawaresdk, baseUrl: 'http://s', units: kgPerMWh}}",
            "providers.x.units: must be 'gCO2eqPerKWh' or 'lbsPerMWh'",
        ),
        (
            "providers: {x: {type: carbonawaresdk, baseUrl: 'http://s', signal: moer}}",
            "providers.x.signal: must be 'average' or 'marginal'",
        ),
        ("providers: {x: {type: trace}}", "providers.x.files: required"),
        ("providers: {x: {type: trace, files: {DE: a.csv}, shift: later}}", "providers.x.shift: must be 'none'"),
        (
            "providers: {x: {type: trace, files: {DE: a.csv}, anchor: June}}",
            "providers.x.anchor: 'June' is not a timestamp",
        ),
        (
            "providers: {x: {type: trace, files: {DE: a.csv}, noiseFraction: 0.9}}",
            "providers.x.noiseFraction: expected a number in [0, 0.5)",
        ),
        ("providers: {x: {type: trace, files: {DE: a.csv}, seed: 1.5}}", "providers.x.seed: expected a whole number"),
        ("carbon: {cacheTTL: 10}", "carbon.cacheTTL: expected a duration string like '30s'"),
        ("carbon: {cacheTTL: 10 minutes}", "carbon.cacheTTL: '10 minutes' is not a duration"),
        ("carbon: {cacheTTL: 3h}", "carbon.cacheTTL: must not exceed staleAfter"),
        ("carbon: {cachettl: 3m}", "carbon.cachettl: unknown field"),
        ("carbon: {maxRetries: -1}", "carbon.maxRetries: expected a whole number 0..10"),
        ("regions: {name: a}", "regions: expected a list of regions"),
        ("regions: [{carbon: {}}]", "regions[0].name: required"),
        ("regions: [{name: a}, {name: a}]", "regions[1].name: duplicate region 'a'"),
        (
            "providers: {e: {type: electricitymaps}}\nregions: [{name: a, carbon: {provider: e}}]",
            "regions[0].carbon.zone: required when provider is set",
        ),
        (
            "providers: {u: {type: ukcarbonintensity}}\nregions: [{name: a, carbon: {provider: u, zone: London}}]",
            "regions[0].carbon.zone: UK Carbon Intensity zone must be 'national' or a region id 1..18",
        ),
        (
            "providers: {e: {type: electricitymaps}}\n"
            "regions: [{name: a, carbon: {fallbackTrace: {provider: e, zone: DE}}}]",
            "regions[0].carbon.fallbackTrace.provider: 'e' is not a provider of type trace",
        ),
        (
            "providers: {d: {type: trace, files: {DE: a.csv}}}\n"
            "regions: [{name: a, carbon: {fallbackTrace: {provider: d, zone: FR}}}]",
            "regions[0].carbon.fallbackTrace.zone: trace provider 'd' has no file for zone 'FR'; its zones: DE",
        ),
        (
            "providers: {d: {type: trace, files: {DE: a.csv}}}\nregions: [{name: a, carbon: {provider: d, zone: GB}}]",
            "regions[0].carbon.zone: trace provider 'd' has no file for zone 'GB'",
        ),
        (
            "regions: [{name: a, carbon: {staticGramsPerKwh: 0}}]",
            "regions[0].carbon.staticGramsPerKwh: expected the region's annual average",
        ),
        ("regions: [{name: a, carbon: {staticGramsPerKwh: '85'}}]", "regions[0].carbon.staticGramsPerKwh"),
        (
            "regions: [{name: a, carbon: {static: 85}}]",
            "regions[0].carbon.static: unknown field; known fields: provider, zone, fallbackTrace, staticGramsPerKwh",
        ),
        ("regions: [{name: a, carbon: [1]}]", "regions[0].carbon: expected a mapping"),
    ],
)
def test_errors_name_the_field_and_the_fix(doc, message):
    with pytest.raises(CarbonConfigError) as ei:
        parse(doc)
    assert str(ei.value).startswith(message.split(":")[0] + ":")
    assert message in str(ei.value)


def test_yaml_datetime_anchor_is_accepted():
    for text, expected in (
        ("2020-06-01T06:00:00Z", datetime(2020, 6, 1, 6, tzinfo=UTC)),
        ("2020-06-01", datetime(2020, 6, 1, tzinfo=UTC)),
    ):
        trace = parse(f"providers: {{d: {{type: trace, files: {{DE: a.csv}}, anchor: {text}}}}}").providers["d"]
        assert isinstance(trace, TraceConfig)
        assert trace.anchor == expected
