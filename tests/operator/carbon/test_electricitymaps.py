from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.credentials import SecretRef
from green_operator.carbon.electricitymaps import ElectricityMapsProvider
from green_operator.carbon.provider import ErrorReason, ProviderError
from green_operator.carbon.series import SignalKind

T0 = datetime(2020, 6, 1, tzinfo=UTC)
TOKEN = "em-token-0123456789"


@pytest.fixture
def em(server, make_client, clock, monkeypatch):
    monkeypatch.setenv("EMAPS_TOKEN", TOKEN)
    client = make_client(server.url + "/v3/", name="emaps")
    return ElectricityMapsProvider("emaps", client, token=SecretRef(env="EMAPS_TOKEN"), clock=clock)


def test_forecast_parses_values_times_and_sends_the_token(server, em, fixture_json, clock):
    body = fixture_json("electricitymaps_forecast.json")
    server.json("/v3/carbon-intensity/forecast", body)
    s = em.forecast("GB", T0, T0 + timedelta(hours=72))
    assert len(s) == len(body["forecast"])
    assert s.step == timedelta(hours=1)
    assert s.points[0].start == T0
    assert [p.grams_per_kwh for p in s.points[:3]] == [146.0, 151.0, 190.0]
    p = s.points[0]
    assert (p.provider, p.signal, p.estimated, p.fetched_at) == ("emaps", SignalKind.AVERAGE, False, clock.now)
    seen = server.last("/v3/carbon-intensity/forecast")
    assert seen.param("zone") == "GB"
    assert seen.headers["auth-token"] == TOKEN


def test_forecast_is_clipped_to_the_window(server, em, fixture_json):
    server.json("/v3/carbon-intensity/forecast", fixture_json("electricitymaps_forecast.json"))
    s = em.forecast("GB", T0 + timedelta(hours=2, minutes=30), T0 + timedelta(hours=5))
    assert [p.start for p in s.points] == [T0 + timedelta(hours=h) for h in (2, 3, 4)]
    assert s.covers(T0 + timedelta(hours=2, minutes=30), T0 + timedelta(hours=5))


def test_history_carries_the_estimated_flag(server, em, fixture_json, clock):
    body = fixture_json("electricitymaps_history.json")
    body["history"][1]["isEstimated"] = True
    server.json("/v3/carbon-intensity/history", body)
    clock.now = datetime(2020, 6, 1, tzinfo=UTC)  # the history endpoint covers the last 24 h
    start = datetime(2020, 5, 31, tzinfo=UTC)
    s = em.history("GB", start, start + timedelta(hours=24))
    assert len(s) == 24
    assert [p.estimated for p in s.points[:3]] == [False, True, False]
    assert s.points[0].grams_per_kwh == 140.0


def test_older_history_uses_past_range_with_start_and_end(server, em, fixture_json, clock):
    hist = fixture_json("electricitymaps_history.json")
    server.json("/v3/carbon-intensity/past-range", {"zone": "GB", "data": hist["history"]})
    clock.now = datetime(2020, 6, 10, tzinfo=UTC)
    start = datetime(2020, 5, 31, 2, tzinfo=UTC)
    s = em.history("GB", start, start + timedelta(hours=3))
    assert [p.grams_per_kwh for p in s.points] == [149.0, 150.0, 150.0]
    seen = server.last("/v3/carbon-intensity/past-range")
    assert (seen.param("start"), seen.param("end")) == ("2020-05-31T02:00:00Z", "2020-05-31T05:00:00Z")


def test_latest(server, em, fixture_json):
    server.json("/v3/carbon-intensity/latest", fixture_json("electricitymaps_latest.json"))
    p = em.latest("GB")
    assert (p.start, p.grams_per_kwh, p.estimated) == (T0, 146.0, True)


def test_optional_parameters_are_sent(server, make_client, fixture_json):
    server.json("/v3/carbon-intensity/forecast", fixture_json("electricitymaps_forecast.json"))
    em = ElectricityMapsProvider(
        "emaps", make_client(server.url + "/v3"), emission_factor_type="direct", disable_estimations=True
    )
    em.forecast("GB", T0, T0 + timedelta(hours=1))
    seen = server.last()
    assert seen.param("emissionFactorType") == "direct"
    assert seen.param("disableEstimations") == "true"
    assert "auth-token" not in seen.headers  # no token configured, none sent


def test_error_body_is_reported_without_the_token(server, em, fixture_json):
    server.json("/v3/carbon-intensity/forecast", fixture_json("electricitymaps_error.json"), status=404)
    with pytest.raises(ProviderError) as ei:
        em.forecast("GB", T0, T0 + timedelta(hours=1))
    assert ei.value.reason == ErrorReason.CLIENT_ERROR
    assert 'No recent data for zone "GB"' in str(ei.value)
    assert TOKEN not in str(ei.value)


def test_null_values_are_holes_not_zeros(server, em, fixture_json):
    body = fixture_json("electricitymaps_forecast.json")
    body["forecast"][1]["carbonIntensity"] = None
    server.json("/v3/carbon-intensity/forecast", body)
    s = em.forecast("GB", T0, T0 + timedelta(hours=3))
    assert [p.start for p in s.points] == [T0, T0 + timedelta(hours=2)]
    assert 0.0 not in [p.grams_per_kwh for p in s.points]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("forecast"), "response.forecast: missing field"),
        (lambda b: b["forecast"][2].pop("datetime"), "forecast[2].datetime: missing field"),
        (lambda b: b["forecast"][0].update(carbonIntensity="high"), "forecast[0].carbonIntensity: expected a number"),
        (lambda b: b.update(forecast={"a": 1}), "response.forecast: expected a list"),
    ],
)
def test_missing_or_mistyped_fields(server, em, fixture_json, mutate, message):
    body = fixture_json("electricitymaps_forecast.json")
    mutate(body)
    server.json("/v3/carbon-intensity/forecast", body)
    with pytest.raises(ProviderError) as ei:
        em.forecast("GB", T0, T0 + timedelta(hours=3))
    assert ei.value.reason == ErrorReason.MALFORMED
    assert message in str(ei.value)


def test_no_data_in_window(server, em, fixture_json):
    server.json("/v3/carbon-intensity/forecast", fixture_json("electricitymaps_forecast.json"))
    with pytest.raises(ProviderError) as ei:
        em.forecast("GB", T0 + timedelta(days=10), T0 + timedelta(days=11))
    assert ei.value.reason == ErrorReason.NO_DATA


def test_token_file_is_read_per_request_so_rotation_applies(server, make_client, fixture_json, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("first-token\n")
    server.json("/v3/carbon-intensity/forecast", fixture_json("electricitymaps_forecast.json"))
    em = ElectricityMapsProvider("emaps", make_client(server.url + "/v3"), token=SecretRef(file=tok))
    em.forecast("GB", T0, T0 + timedelta(hours=1))
    assert server.last().headers["auth-token"] == "first-token"
    tok.write_text("second-token")
    em.forecast("GB", T0, T0 + timedelta(hours=1))
    assert server.last().headers["auth-token"] == "second-token"


def test_missing_token_is_a_credentials_error_naming_the_variable(server, make_client, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    em = ElectricityMapsProvider("emaps", make_client(server.url), token=SecretRef(env="NO_SUCH_TOKEN"))
    with pytest.raises(ProviderError) as ei:
        em.forecast("GB", T0, T0 + timedelta(hours=1))
    assert ei.value.reason == ErrorReason.CREDENTIALS
    assert "NO_SUCH_TOKEN" in str(ei.value)
    assert server.count() == 0


def test_offsets_in_timestamps_are_normalised(server, em):
    body = {
        "zone": "FR",
        "forecast": [
            {"carbonIntensity": 50, "datetime": "2020-06-01T02:00:00+02:00"},
            {"carbonIntensity": 60, "datetime": "2020-06-01T03:00:00+02:00"},
        ],
    }
    server.json("/v3/carbon-intensity/forecast", body)
    s = em.forecast("FR", T0, T0 + timedelta(hours=2))
    assert [p.start for p in s.points] == [T0, T0 + timedelta(hours=1)]
