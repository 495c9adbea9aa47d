from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.carbon_aware_sdk import CarbonAwareSdkProvider
from green_operator.carbon.provider import ErrorReason, ProviderError
from green_operator.carbon.series import SignalKind

T0 = datetime(2020, 6, 1, tzinfo=UTC)


@pytest.fixture
def sdk(server, make_client, clock):
    return CarbonAwareSdkProvider("sdk", make_client(server.url, name="sdk"), clock=clock)


def test_forecast_current_with_optimal_data_points(server, sdk, fixture_json):
    server.json("/emissions/forecasts/current", fixture_json("carbonaware_forecasts_current.json"))
    fc = sdk.forecast_current("uksouth")
    assert server.last().param("location") == "uksouth"
    assert len(fc.series) == 288
    assert fc.series.step == timedelta(minutes=5)
    assert fc.series.points[-1].grams_per_kwh == 240.0
    assert [(p.start, p.grams_per_kwh) for p in fc.optimal] == [(T0, 146.0)]
    assert fc.generated_at == T0


def test_older_single_optimal_data_point_is_accepted(server, sdk, fixture_json):
    body = fixture_json("carbonaware_forecasts_current.json")
    body[0]["optimalDataPoint"] = body[0].pop("optimalDataPoints")[0]
    server.json("/emissions/forecasts/current", body)
    fc = sdk.forecast_current("uksouth")
    assert [p.grams_per_kwh for p in fc.optimal] == [146.0]


def test_no_optimal_point_at_all(server, sdk, fixture_json):
    body = fixture_json("carbonaware_forecasts_current.json")
    del body[0]["optimalDataPoints"]
    server.json("/emissions/forecasts/current", body)
    assert sdk.forecast_current("uksouth").optimal == ()


def test_forecast_window_and_lbs_conversion(server, make_client, fixture_json):
    server.json("/emissions/forecasts/current", fixture_json("carbonaware_forecasts_current.json"))
    sdk = CarbonAwareSdkProvider("sdk", make_client(server.url), scale=0.453592, signal=SignalKind.MARGINAL)
    s = sdk.forecast("uksouth", T0 + timedelta(hours=23, minutes=50), T0 + timedelta(hours=30))
    assert [p.grams_per_kwh for p in s.points] == pytest.approx([240.0 * 0.453592] * 2)
    assert s.points[0].signal is SignalKind.MARGINAL


def test_offsets_are_normalised(server, sdk):
    body = [
        {
            "location": "westeurope",
            "generatedAt": "2020-06-01T02:00:00+02:00",
            "forecastData": [
                {"location": "westeurope", "timestamp": "2020-06-01T02:00:00+02:00", "duration": 60, "value": 300},
                {"location": "westeurope", "timestamp": "2020-06-01T03:00:00+02:00", "duration": 60, "value": 310},
            ],
        }
    ]
    server.json("/emissions/forecasts/current", body)
    fc = sdk.forecast_current("westeurope")
    assert [p.start for p in fc.series.points] == [T0, T0 + timedelta(hours=1)]
    assert fc.series.step == timedelta(hours=1)
    assert fc.generated_at == T0


def test_picks_the_requested_location(server, sdk, fixture_json):
    body = fixture_json("carbonaware_forecasts_current.json")
    other = {**body[0], "location": "ukwest", "forecastData": body[0]["forecastData"][:2]}
    server.json("/emissions/forecasts/current", [other, body[0]])
    assert len(sdk.forecast_current("uksouth").series) == 288


def test_history_bylocations_with_timespan_and_minutes(server, sdk):
    body = [
        {"location": "uksouth", "time": "2020-06-01T00:00:00Z", "rating": 146.0, "duration": "01:00:00"},
        {"location": "uksouth", "time": "2020-06-01T01:00:00Z", "rating": 151.0, "duration": 60},
        {"location": "ukwest", "time": "2020-06-01T01:00:00Z", "rating": 999.0, "duration": 60},
    ]
    server.json("/emissions/bylocations", body)
    s = sdk.history("uksouth", T0, T0 + timedelta(hours=2))
    seen = server.last()
    assert (seen.param("location"), seen.param("time"), seen.param("toTime")) == (
        "uksouth",
        "2020-06-01T00:00:00Z",
        "2020-06-01T02:00:00Z",
    )
    assert [p.grams_per_kwh for p in s.points] == [146.0, 151.0]
    assert s.step == timedelta(hours=1)
    assert s.covers(T0, T0 + timedelta(hours=2))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "empty list"),
        ({"error": "x"}, "response: expected a list"),
        ([{"location": "uksouth"}], "forecastData: missing field"),
        (
            [{"location": "uksouth", "forecastData": [{"timestamp": "2020-06-01T00:00:00Z", "value": "n/a"}]}],
            "value: expected a number",
        ),
        (
            [
                {
                    "location": "uksouth",
                    "forecastData": [{"timestamp": "2020-06-01T00:00:00Z", "value": 1, "duration": "5m"}],
                }
            ],
            "is not a duration",
        ),
    ],
)
def test_malformed_forecasts(server, sdk, body, message):
    server.json("/emissions/forecasts/current", body)
    with pytest.raises(ProviderError) as ei:
        sdk.forecast_current("uksouth")
    assert ei.value.reason == ErrorReason.MALFORMED
    assert message in str(ei.value)


def test_sdk_error_status(server, sdk):
    server.json("/emissions/forecasts/current", {"title": "Invalid location", "status": 400}, status=400)
    with pytest.raises(ProviderError, match="Invalid location"):
        sdk.forecast_current("mars")
