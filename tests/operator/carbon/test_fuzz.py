"""Fuzzing the four providers' payload parsers: whatever a provider answers (any JSON, mutations of
its real response shapes, bytes that are not JSON, any status), the result is a parsed series or a
ProviderError, never another exception. The HTTP session is the seam (no server: fast)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from green_operator.carbon.carbon_aware_sdk import CarbonAwareSdkProvider
from green_operator.carbon.credentials import SecretRef
from green_operator.carbon.electricitymaps import ElectricityMapsProvider
from green_operator.carbon.provider import ProviderError
from green_operator.carbon.series import IntensitySeries
from green_operator.carbon.transport import HttpClient, RetryPolicy
from green_operator.carbon.ukci import UKCarbonIntensityProvider
from green_operator.carbon.watttime import WattTimeProvider
from tests.support.fuzz import json_values, mutated

from .conftest import FIXTURES

T0 = datetime(2020, 6, 1, tzinfo=UTC)


class CannedSession(requests.Session):
    """Answers every GET with the same status and body, except WattTime's login (a valid token)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self.status, self.body = status, body

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        login = str(url).endswith("/login")
        resp = requests.Response()
        resp.status_code, resp._content = (200, b'{"token":"t0k3n"}') if login else (self.status, self.body)
        resp.raw = io.BytesIO(resp._content)
        return resp


def _client(session: requests.Session) -> HttpClient:
    return HttpClient(
        "p", "http://provider.invalid", session, timeout_s=1, retry=RetryPolicy(max_retries=0), clock=lambda: T0
    )


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


Fetch = Callable[[HttpClient], IntensitySeries | object]
WINDOW = (T0, T0 + timedelta(hours=24))

CALLS: dict[str, tuple[str, Fetch]] = {
    "electricitymaps latest": (
        "electricitymaps_latest.json",
        lambda c: ElectricityMapsProvider("em", c, clock=lambda: T0).latest("GB"),
    ),
    "electricitymaps forecast": (
        "electricitymaps_forecast.json",
        lambda c: ElectricityMapsProvider("em", c, clock=lambda: T0).forecast("GB", *WINDOW),
    ),
    "electricitymaps history": (
        "electricitymaps_history.json",
        lambda c: ElectricityMapsProvider("em", c, clock=lambda: T0).history("GB", T0 - timedelta(hours=24), T0),
    ),
    "watttime forecast": (
        "watttime_forecast.json",
        lambda c: _watttime(c, datetime(2023, 6, 8, tzinfo=UTC)).forecast(
            "CAISO_NORTH", datetime(2023, 6, 8, tzinfo=UTC), datetime(2023, 6, 9, tzinfo=UTC)
        ),
    ),
    "watttime history": (
        "watttime_historical.json",
        lambda c: _watttime(c, datetime(2023, 6, 10, tzinfo=UTC)).history(
            "CAISO_NORTH", datetime(2023, 6, 8, tzinfo=UTC), datetime(2023, 6, 9, tzinfo=UTC)
        ),
    ),
    "ukci national": (
        "ukci_intensity_fw48h.json",
        lambda c: UKCarbonIntensityProvider("uk", c, clock=lambda: T0).forecast("national", *WINDOW),
    ),
    "ukci regional": (
        "ukci_regional_fw48h.json",
        lambda c: UKCarbonIntensityProvider("uk", c, clock=lambda: T0).forecast("1", *WINDOW),
    ),
    "carbon aware sdk forecast": (
        "carbonaware_forecasts_current.json",
        lambda c: CarbonAwareSdkProvider("ca", c, clock=lambda: T0).forecast("uksouth", *WINDOW),
    ),
    "carbon aware sdk history": (
        "carbonaware_bylocations_best.json",
        lambda c: CarbonAwareSdkProvider("ca", c, clock=lambda: T0 + timedelta(days=2)).history("uksouth", *WINDOW),
    ),
}


def _watttime(client: HttpClient, now: datetime) -> WattTimeProvider:
    user, password = SecretRef(env="FUZZ_WT_USER"), SecretRef(env="FUZZ_WT_PASS")
    return WattTimeProvider("wt", client, username=user, password=password, clock=lambda: now)


def _bodies(fixture: str) -> st.SearchStrategy[bytes]:
    real = _fixture(fixture)
    as_json = st.one_of(json_values, mutated(real)).map(lambda d: json.dumps(d).encode())
    nested = st.integers(900, 5000).map(lambda n: b"[" * n + b"]" * n)  # deeper than json recurses
    return st.one_of(as_json, as_json, as_json, st.binary(max_size=64), nested)


@pytest.fixture(autouse=True)
def _wattime_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUZZ_WT_USER", "user")
    monkeypatch.setenv("FUZZ_WT_PASS", "pa55")


@pytest.mark.parametrize("call", sorted(CALLS))
def test_the_real_shapes_parse(call: str) -> None:
    fixture, fetch = CALLS[call]
    assert fetch(_client(CannedSession(200, (FIXTURES / fixture).read_bytes()))) is not None


@pytest.mark.parametrize("call", sorted(CALLS))
@given(data=st.data())
def test_any_answer_parses_or_is_a_provider_error(call: str, data: st.DataObject) -> None:
    fixture, fetch = CALLS[call]
    status = data.draw(st.sampled_from([200, 200, 200, 400, 401, 404, 429, 500]), label="status")
    body = data.draw(_bodies(fixture), label="body")
    try:
        fetch(_client(CannedSession(status, body)))
    except ProviderError as err:
        message = str(err)
    else:
        message = "parsed"
    assert message  # an error says what is wrong
