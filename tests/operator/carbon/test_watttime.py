import base64
from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.credentials import SecretRef
from green_operator.carbon.provider import ErrorReason, ProviderError
from green_operator.carbon.series import SignalKind
from green_operator.carbon.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTimeProvider

T0 = datetime(2023, 6, 8, tzinfo=UTC)
USER, PASSWORD = "gto-user", "pa55-w0rd-secret"


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("WT_USER", USER)
    monkeypatch.setenv("WT_PASS", PASSWORD)


@pytest.fixture
def wt(server, make_client, clock, creds):
    clock.now = T0
    client = make_client(server.url, name="wt")
    return WattTimeProvider(
        "wt", client, username=SecretRef(env="WT_USER"), password=SecretRef(env="WT_PASS"), clock=clock
    )


def _login(server, *tokens):
    server.route("/login", *(server.Reply(200, {"token": t}) for t in tokens))


def test_forecast_logs_in_with_basic_auth_and_converts_units(server, wt, fixture_json, clock):
    body = fixture_json("watttime_forecast.json")
    _login(server, "tok-1")
    server.json("/v3/forecast", body)
    s = wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=24))
    login = server.last("/login")
    assert login.headers["authorization"] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    fc = server.last("/v3/forecast")
    assert fc.headers["authorization"] == "Bearer tok-1"
    assert (fc.param("region"), fc.param("signal_type"), fc.param("horizon_hours")) == ("CAISO_NORTH", "co2_moer", "24")
    assert len(s) == 288
    assert s.step == timedelta(minutes=5)
    # 425.01605069 lbs/MWh * 0.453592 = 192.784... g/kWh
    assert s.points[0].grams_per_kwh == pytest.approx(425.01605069 * 0.453592)
    assert s.points[0].grams_per_kwh == pytest.approx(192.7839, abs=1e-3)
    assert s.points[0].signal is SignalKind.MARGINAL
    assert s.points[0].fetched_at == clock.now


def test_conversion_constant():
    # 1 lb = 453.592 g; 1 MWh = 1000 kWh
    assert pytest.approx(453.592 / 1000) == LBS_PER_MWH_TO_G_PER_KWH


def test_token_is_reused_then_refreshed_before_it_expires(server, wt, fixture_json, clock):
    _login(server, "tok-1", "tok-2")
    server.json("/v3/forecast", fixture_json("watttime_forecast.json"))
    window = (T0, T0 + timedelta(hours=1))
    wt.forecast("CAISO_NORTH", *window)
    clock.advance(minutes=20)
    wt.forecast("CAISO_NORTH", *window)
    assert server.count("/login") == 1
    assert server.last("/v3/forecast").headers["authorization"] == "Bearer tok-1"
    clock.advance(minutes=8)  # 28 min old: within the 2-minute refresh margin of the 30-minute expiry
    wt.forecast("CAISO_NORTH", *window)
    assert server.count("/login") == 2
    assert server.last("/v3/forecast").headers["authorization"] == "Bearer tok-2"


def test_401_triggers_one_relogin_and_retry(server, wt, fixture_json):
    _login(server, "tok-old", "tok-new")
    server.route(
        "/v3/forecast",
        server.Reply(401, {"error": "token expired"}),
        server.Reply(200, fixture_json("watttime_forecast.json")),
    )
    s = wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert len(s) == 12
    assert server.count("/login") == 2
    auths = [r.headers["authorization"] for r in server.seen if r.path == "/v3/forecast"]
    assert auths == ["Bearer tok-old", "Bearer tok-new"]


def test_401_twice_is_an_auth_error(server, wt):
    _login(server, "tok-a", "tok-b", "tok-c")
    server.json("/v3/forecast", {"error": "no access to region"}, status=401)
    with pytest.raises(ProviderError) as ei:
        wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert ei.value.reason == ErrorReason.AUTH
    assert server.count("/v3/forecast") == 2
    assert server.count("/login") == 2
    assert "tok-" not in str(ei.value)


def test_rejected_login_names_the_secrets_but_never_their_values(server, wt):
    server.json("/login", {"error": f"bad password {PASSWORD}"}, status=403)
    with pytest.raises(ProviderError) as ei:
        wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    text = str(ei.value)
    assert ei.value.reason == ErrorReason.AUTH
    assert "WT_USER" in text
    assert "WT_PASS" in text
    assert PASSWORD not in text
    assert server.count("/v3/forecast") == 0


def test_rate_limited_login(server, wt):
    server.json("/login", {"error": "too many logins"}, status=429, **{"Retry-After": "300"})
    with pytest.raises(ProviderError) as ei:
        wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert ei.value.reason == ErrorReason.RATE_LIMITED
    assert ei.value.retry_after_s == 300


def test_login_without_token_field(server, wt):
    server.json("/login", {"access": "nope"})
    with pytest.raises(ProviderError) as ei:
        wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert ei.value.reason == ErrorReason.MALFORMED


def test_historical_sends_the_window(server, wt, fixture_json):
    _login(server, "tok")
    server.json("/v3/historical", fixture_json("watttime_historical.json"))
    s = wt.history("CAISO_NORTH", T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    seen = server.last("/v3/historical")
    assert (seen.param("start"), seen.param("end")) == ("2023-06-08T01:00:00Z", "2023-06-08T02:00:00Z")
    assert len(s) == 12
    assert s.points[0].grams_per_kwh == pytest.approx(434.99508283 * 0.453592)


def test_percentile_units_are_refused(server, wt, fixture_json):
    _login(server, "tok")
    server.json("/v3/forecast", fixture_json("watttime_signal_index.json"))
    with pytest.raises(ProviderError) as ei:
        wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert ei.value.reason == ErrorReason.MALFORMED
    assert "percentile" in str(ei.value)


def test_average_signal_is_recorded_as_average(server, make_client, clock, creds, fixture_json):
    clock.now = T0
    body = fixture_json("watttime_forecast.json")
    body["meta"]["signal_type"] = "co2_aoer"
    _login(server, "tok")
    server.json("/v3/forecast", body)
    wt = WattTimeProvider(
        "wt",
        make_client(server.url),
        username=SecretRef(env="WT_USER"),
        password=SecretRef(env="WT_PASS"),
        signal_type="co2_aoer",
        clock=clock,
    )
    s = wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))
    assert server.last("/v3/forecast").param("signal_type") == "co2_aoer"
    assert s.points[0].signal is SignalKind.AVERAGE


def test_missing_meta(server, wt, fixture_json):
    body = fixture_json("watttime_forecast.json")
    del body["meta"]
    _login(server, "tok")
    server.json("/v3/forecast", body)
    with pytest.raises(ProviderError, match=r"response\.meta: missing field"):
        wt.forecast("CAISO_NORTH", T0, T0 + timedelta(hours=1))


def test_horizon_is_capped_at_72_hours(server, wt, fixture_json):
    _login(server, "tok")
    server.json("/v3/forecast", fixture_json("watttime_forecast.json"))
    wt.forecast("CAISO_NORTH", T0, T0 + timedelta(days=10))
    assert server.last("/v3/forecast").param("horizon_hours") == "72"
