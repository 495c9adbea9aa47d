from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.provider import ErrorReason, ProviderError
from green_operator.carbon.ukci import UKCarbonIntensityProvider, parse_zone

T0 = datetime(2020, 6, 1, tzinfo=UTC)


@pytest.fixture
def uk(server, make_client, clock):
    return UKCarbonIntensityProvider("uk", make_client(server.url, name="uk"), clock=clock)


def _per_region(regional, region_id, *, as_list):
    """The /regional/.../regionid/{id} shape built from the all-regions fixture."""
    slots = []
    meta: dict[str, object] = {}
    for slot in regional["data"]:
        for r in slot["regions"]:
            if r["regionid"] == region_id:
                meta = {k: r[k] for k in ("regionid", "dnoregion", "shortname")}
                slots.append(
                    {
                        "from": slot["from"],
                        "to": slot["to"],
                        "intensity": r["intensity"],
                        "generationmix": r["generationmix"],
                    }
                )
    obj = {**meta, "data": slots}
    return {"data": [obj] if as_list else obj}


def test_national_forecast_uses_fw48h_from_the_half_hour(server, uk, fixture_json, clock):
    server.json("/intensity/2020-06-01T00:00Z/fw48h", fixture_json("ukci_intensity_fw48h.json"))
    s = uk.forecast("national", T0 + timedelta(minutes=10), T0 + timedelta(hours=48))
    assert server.last().path == "/intensity/2020-06-01T00:00Z/fw48h"
    assert s.step == timedelta(minutes=30)
    assert len(s) == 96
    # the forecast uses 'forecast' even where an 'actual' exists
    assert [p.grams_per_kwh for p in s.points[:3]] == [146.0, 146.0, 151.0]
    assert s.points[0].fetched_at == clock.now
    assert not any(p.estimated for p in s.points)


@pytest.mark.parametrize("as_list", [False, True])
def test_regional_forecast_per_region_shapes(server, uk, fixture_json, as_list):
    body = _per_region(fixture_json("ukci_regional_fw48h.json"), 13, as_list=as_list)
    server.json("/regional/intensity/2020-06-01T00:00Z/fw48h/regionid/13", body)
    s = uk.forecast("13", T0, T0 + timedelta(hours=1))
    assert [p.grams_per_kwh for p in s.points] == [153.0, body_value(body, 1)]


def body_value(body, i):
    data = body["data"][0] if isinstance(body["data"], list) else body["data"]
    return float(data["data"][i]["intensity"]["forecast"])


def test_regional_all_regions_shape_picks_the_region(server, uk, fixture_json):
    server.json("/regional/intensity/2020-06-01T00:00Z/fw48h/regionid/1", fixture_json("ukci_regional_fw48h.json"))
    s = uk.forecast("1", T0, T0 + timedelta(minutes=30))
    assert [p.grams_per_kwh for p in s.points] == [22.0]


def test_regional_region_absent(server, uk, fixture_json):
    server.json("/regional/intensity/2020-06-01T00:00Z/fw48h/regionid/5", fixture_json("ukci_regional_fw48h.json"))
    with pytest.raises(ProviderError, match="region id 5 not present") as ei:
        uk.forecast("5", T0, T0 + timedelta(minutes=30))
    assert ei.value.reason == ErrorReason.MALFORMED


def test_national_history_prefers_actual_and_flags_stand_ins(server, uk, fixture_json):
    server.json("/intensity/2020-06-01T00:00Z/2020-06-01T01:00Z", fixture_json("ukci_intensity_fw48h.json"))
    s = uk.history("GB", T0, T0 + timedelta(hours=1))
    assert server.last().path == "/intensity/2020-06-01T00:00Z/2020-06-01T01:00Z"
    assert [(p.grams_per_kwh, p.estimated) for p in s.points] == [(149.0, False), (146.0, True)]


def test_regional_history_is_flagged_estimated(server, uk, fixture_json):
    body = _per_region(fixture_json("ukci_regional_fw48h.json"), 3, as_list=False)
    server.json("/regional/intensity/2020-06-01T00:00Z/2020-06-01T00:30Z/regionid/3", body)
    s = uk.history("3", T0, T0 + timedelta(minutes=30))
    assert [(p.grams_per_kwh, p.estimated) for p in s.points] == [(131.0, True)]


def test_slots_without_values_are_holes(server, uk, fixture_json):
    body = fixture_json("ukci_intensity_fw48h.json")
    body["data"][1]["intensity"]["forecast"] = None
    server.json("/intensity/2020-06-01T00:00Z/fw48h", body)
    s = uk.forecast("national", T0, T0 + timedelta(hours=2))
    assert T0 + timedelta(minutes=30) not in [p.start for p in s.points]


def test_missing_intensity_field(server, uk, fixture_json):
    body = fixture_json("ukci_intensity_fw48h.json")
    del body["data"][4]["intensity"]
    server.json("/intensity/2020-06-01T00:00Z/fw48h", body)
    with pytest.raises(ProviderError, match=r"data\[4\]\.intensity: missing field"):
        uk.forecast("national", T0, T0 + timedelta(hours=2))


def test_zones():
    assert parse_zone("national") is None
    assert parse_zone("GB") is None
    assert parse_zone("13") == 13
    for bad in ("0", "19", "London", ""):
        with pytest.raises(ValueError, match=r"region id 1\.\.18"):
            parse_zone(bad)
