"""No secret in any log: the carbon service and its providers run against a local server with
real-looking credentials, including a provider that echoes them back in every kind of failure (error
bodies, malformed JSON, rate limits); every log record at DEBUG from every logger (urllib3's too), every
error text, condition message and metric sample is scanned for the secrets' values."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from green_operator.api.status import carbon_condition
from green_operator.carbon.config import parse_carbon_config
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService

EM_TOKEN = "emk_5pT9xQ2vLr8ZfW3nB7cYh1KdJ4sA6gUe"
WT_USER, WT_PASSWORD = "ml-platform@example.com", "Wt!p4ss-9fK2mQ7xZr"
WT_BEARER = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtbC1wbGF0Zm9ybSJ9.c2lnbmF0dXJlLXNlY3JldA"
BASIC = base64.b64encode(f"{WT_USER}:{WT_PASSWORD}".encode()).decode()
SECRETS = (EM_TOKEN, WT_PASSWORD, WT_BEARER, BASIC)

EM = "/v3/carbon-intensity/forecast"
WT = "/v3/forecast"
# What each provider received, quoted back (a provider can only echo what it was sent).
ECHOES = {
    EM: (EM_TOKEN, f"auth-token: {EM_TOKEN}; token={EM_TOKEN}"),
    WT: (WT_BEARER, f"Authorization: Bearer {WT_BEARER}; Authorization: Basic {BASIC}; pw={WT_PASSWORD}; {WT_BEARER}"),
}


def hostile(secret: str, echo: str) -> list[tuple[int, Any]]:
    """Every failure the service handles, each quoting the credentials."""
    return [
        (401, {"error": f"invalid token {secret}", "message": echo}),
        (403, {"detail": echo}),
        (429, {"message": f"slow down {secret}"}),
        (500, f"<html>{echo}</html>"),
        (400, {"error": {"message": echo}}),
        (200, f'{{"forecast": [{{"oops": "{secret}" '),  # malformed JSON quoting the credential
        (200, {"forecast": [{"carbonIntensity": secret, "datetime": echo}], "data": echo}),
    ]


@pytest.fixture
def service(
    server: Any, clock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_factory: Any
) -> Iterator[tuple[CarbonService, CollectorRegistry]]:
    monkeypatch.setenv("EMAPS_TOKEN", EM_TOKEN)
    monkeypatch.setenv("WT_USER", WT_USER)
    monkeypatch.setenv("WT_PASSWORD", WT_PASSWORD)
    doc = {
        "providers": {
            "emaps": {"type": "electricitymaps", "baseUrl": server.url + "/v3/", "tokenEnv": "EMAPS_TOKEN"},
            "wt": {"type": "watttime", "baseUrl": server.url, "usernameEnv": "WT_USER", "passwordEnv": "WT_PASSWORD"},
        },
        "carbon": {"cacheTTL": "1s", "staleAfter": "1h", "retryBackoff": "1s", "maxRetries": 1},
        "regions": [
            {"name": "gb", "carbon": {"provider": "emaps", "zone": "GB", "staticGramsPerKwh": 200}},
            {"name": "ca", "carbon": {"provider": "wt", "zone": "CAISO_NORTH", "staticGramsPerKwh": 250}},
        ],
    }
    registry = CollectorRegistry()
    svc = CarbonService.from_config(
        parse_carbon_config(doc, base_dir=tmp_path),
        clock=clock,
        session_factory=session_factory,
        metrics=CarbonMetrics(registry),
        sleep=lambda _s: None,
        rand=lambda: 0.5,
    )
    yield svc, registry
    svc.close()


def _leaks(text: str) -> list[str]:
    return [s[:6] + "..." for s in SECRETS if s in text]


def test_no_credential_reaches_a_log_an_error_a_condition_or_a_metric(
    service: tuple[CarbonService, CollectorRegistry],
    server: Any,
    clock: Any,
    fixture_json: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, registry = service
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included
    server.json("/login", {"token": WT_BEARER})
    seen: list[str] = []
    good = {EM: (200, fixture_json("electricitymaps_forecast.json")), WT: (200, fixture_json("watttime_forecast.json"))}
    bad = {path: hostile(*echo) for path, echo in ECHOES.items()}
    rounds = [good, *({path: bad[path][i] for path in bad} for i in range(len(bad[EM]))), good]
    for answers in rounds:
        for path, (status, body) in answers.items():
            server.route(path, server.Reply(status, body))
        clock.advance(minutes=30)  # past the cache TTL and any backoff: every round asks the providers again
        for region in ("gb", "ca"):
            result = svc.forecast(region, clock.now, clock.now + timedelta(hours=6))
            seen += [str(result.error or ""), str(carbon_condition([], [result], generation=1, now=clock.now))]
    assert server.count(EM) >= len(rounds)
    assert server.count(WT) >= len(rounds)
    assert server.count("/login") >= 1  # WattTime's credentials were really used
    assert server.last(EM).headers["auth-token"] == EM_TOKEN
    records = [
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "") for r in caplog.records
    ]
    assert any("GB" in line or "emaps" in line for line in records + seen), "the failures were logged or reported"
    assert [(line, _leaks(line)) for line in records + seen if _leaks(line)] == []
    assert _leaks(generate_latest(registry).decode()) == []


def test_the_scan_finds_a_leak() -> None:
    assert _leaks(f"GET failed: {ECHOES[EM][1]} {ECHOES[WT][1]}") == [s[:6] + "..." for s in SECRETS]
