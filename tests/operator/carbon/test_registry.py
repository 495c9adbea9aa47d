"""Adding a provider type is one module plus one registry line: here the "module" is this test's
toy provider, and the "line" is ``registry.register``."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pytest
from prometheus_client import CollectorRegistry
from pydantic import Field

from green_operator.carbon import DataSource, IntensitySeries, plugin, registry, series_from_values
from green_operator.carbon.config import CarbonConfigError, parse_carbon_config
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


# -- the toy provider module ------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyConfig:
    TYPE: ClassVar[str] = "toy"
    name: str
    grams: float


class ToyProvider:
    def __init__(self, name: str, grams: float) -> None:
        self.name = name
        self.grams = grams
        self.closed = False

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        hours = int((end - start) / timedelta(hours=1)) + 1
        return series_from_values(zone, self.name, start, timedelta(hours=1), [self.grams] * hours, fetched_at=NOW)

    history = forecast


class ToySchema(plugin.Schema):
    type: Literal["toy"]
    grams: Annotated[float, Field(gt=0), plugin.Hint("expected a positive number of gCO2eq/kWh")] = Field(
        description="the constant intensity"
    )


def parse_toy(name: str, m: Mapping[str, Any], p: str, base: Path) -> ToyConfig:
    v = plugin.validate(ToySchema, m, p)
    return ToyConfig(name, v.grams)


def build_toy(pc: ToyConfig, ctx: plugin.BuildContext) -> plugin.Built:
    provider = ToyProvider(pc.name, pc.grams)
    return provider, None


def toy_zone(pc: ToyConfig, zone: str, path: str) -> str | None:
    if not zone.startswith("toy-"):
        raise plugin.CarbonConfigError(f"{path}: toy zones start with 'toy-', got {zone!r}")
    return None


TOY = plugin.ProviderType("toy", parse_toy, build_toy, toy_zone, zone_example="'toy-1' (Toy)", schema=ToySchema)


@pytest.fixture
def toy() -> Iterator[None]:
    registry.register(TOY)  # the one registry line
    yield
    registry.unregister("toy")


DOC = {
    "providers": {"play": {"type": "toy", "grams": 42}},
    "regions": [{"name": "lab", "carbon": {"provider": "play", "zone": "toy-1", "staticGramsPerKwh": 300}}],
}


def test_the_service_uses_a_registered_provider(toy: None) -> None:
    cfg = parse_carbon_config(DOC)
    assert cfg.providers["play"] == ToyConfig("play", 42.0)
    service = CarbonService.from_config(cfg, clock=lambda: NOW, metrics=CarbonMetrics(CollectorRegistry()))
    result = service.forecast("lab", NOW, NOW + timedelta(hours=3))
    assert result.source is DataSource.LIVE
    assert result.provider == "play"
    assert {p.grams_per_kwh for p in result.series.points} == {42.0}
    service.close()


def test_a_registered_provider_validates_its_own_fields(toy: None) -> None:
    bad = {**DOC, "providers": {"play": {"type": "toy", "grams": -1}}}
    with pytest.raises(CarbonConfigError, match=r"^providers\.play\.grams: expected a positive number.*, got -1$"):
        parse_carbon_config(bad)
    with pytest.raises(CarbonConfigError, match=r"^providers\.play\.grams: required; the constant intensity$"):
        parse_carbon_config({**DOC, "providers": {"play": {"type": "toy"}}})
    with pytest.raises(CarbonConfigError, match=r"^providers\.play\.gram: unknown field; known fields: type, grams$"):
        parse_carbon_config({**DOC, "providers": {"play": {"type": "toy", "gram": 1}}})
    bad_zone = {**DOC, "regions": [{"name": "lab", "carbon": {"provider": "play", "zone": "x"}}]}
    with pytest.raises(CarbonConfigError, match=r"^regions\[0\]\.carbon\.zone: toy zones start with 'toy-'"):
        parse_carbon_config(bad_zone)
    no_zone = {**DOC, "regions": [{"name": "lab", "carbon": {"provider": "play"}}]}
    with pytest.raises(CarbonConfigError, match=r"zone: required when provider is set.*'toy-1' \(Toy\)"):
        parse_carbon_config(no_zone)


def test_an_unregistered_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(CarbonConfigError, match=r"^providers\.play\.type: unknown provider type 'toy'; known: ") as e:
        parse_carbon_config(DOC)
    for name in ("electricitymaps", "watttime", "ukcarbonintensity", "carbonawaresdk", "trace"):
        assert name in str(e.value)


def test_parsing_the_configuration_does_not_import_the_http_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, green_operator.config, green_operator.carbon.config as c; "
        "c.parse_carbon_config({'providers': {'e': {'type': 'electricitymaps'}}}); "
        "print('requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
