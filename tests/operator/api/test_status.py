"""Decisions and child-Job state translated into status, and back."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from green_operator.api.status import (
    carbon_condition,
    decision_from_status,
    plan_fields,
    reservation_from_status,
)
from green_operator.carbon.provider import DataSource, ForecastResult, SourceSpan
from green_operator.carbon.series import series_from_values
from green_operator.planner import Decision
from harness.cluster import REPO

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)


def decision() -> Decision:
    return Decision(
        key="ml/job",
        region="europe-west9",
        start=NOW + timedelta(hours=3),
        power_limit_watts=286.0,
        expected_duration=timedelta(hours=2, minutes=12),
        expected_grams=546.0,
        forecast_intensity=36.2,
        baseline_region="europe-west3",
        baseline_start=NOW,
        baseline_grams=7381.0,
        baseline_intensity=236.6,
        deadline_at_risk=False,
        reason="Deferred 3h to 13:00 UTC in europe-west9",
    )


def result(source: DataSource, *, stale: bool = False, live_for: timedelta | None = None) -> ForecastResult:
    series = series_from_values("FR", "emaps", NOW, timedelta(hours=1), [50.0] * 48)
    spans: tuple[SourceSpan, ...]
    if live_for is not None:
        spans = (
            SourceSpan(DataSource.LIVE, "emaps", NOW, NOW + live_for),
            SourceSpan(DataSource.STATIC, "static", NOW + live_for, NOW + timedelta(hours=48)),
        )
    else:
        spans = (SourceSpan(source, "emaps", NOW, NOW + timedelta(hours=48)),)
    return ForecastResult(
        "europe-west9",
        series,
        source,
        "emaps" if live_for is None else "emaps+static",
        stale,
        error=None if source is DataSource.LIVE and not stale else "emaps: HTTP 503",
        spans=spans,
    )


def test_plan_round_trips_through_status() -> None:
    d = decision()
    status: dict[str, Any] = {
        "region": d.region,
        "plannedStart": "2026-11-25T13:00:00Z",
        "plan": plan_fields(d, result(DataSource.LIVE), NOW),
    }
    back = decision_from_status("ml/job", status)
    assert back is not None
    assert back.region == d.region
    assert back.start == d.start
    assert back.power_limit_watts == 286.0
    assert back.expected_duration == d.expected_duration
    assert back.baseline_start == d.baseline_start
    assert decision_from_status("ml/job", {}) is None


def test_reservation_covers_the_run_and_ends_with_the_job() -> None:
    status = {
        "phase": "Deferred",
        "region": "europe-west9",
        "plannedStart": "2026-11-25T13:00:00Z",
        "plan": {"expectedDuration": "2h12m"},
    }
    r = reservation_from_status(status, 8)
    assert r is not None
    assert (r.region, r.gpus) == ("europe-west9", 8)
    assert r.end - r.start == timedelta(hours=2, minutes=12)
    started = dict(status, phase="Running", startTime="2026-11-25T12:00:00Z")
    assert reservation_from_status(started, 8).start == datetime(2026, 11, 25, 12, tzinfo=UTC)  # type: ignore[union-attr]
    assert reservation_from_status(dict(status, phase="Succeeded"), 8) is None


def test_carbon_condition_true_for_live_data_even_when_the_tail_is_static() -> None:
    c = carbon_condition([], [result(DataSource.STATIC, live_for=timedelta(hours=24))], 1, NOW)
    assert c[0]["status"] == "True"
    assert "until 2026-11-26T10:00:00Z" in c[0]["message"]


def test_carbon_condition_false_names_the_fallback_and_the_error() -> None:
    c = carbon_condition([], [result(DataSource.TRACE)], 1, NOW)
    assert c[0]["status"] == "False"
    assert c[0]["reason"] == "FallbackData"
    assert "trace data" in c[0]["message"]
    assert "HTTP 503" in c[0]["message"]
    stale = carbon_condition([], [result(DataSource.CACHED, stale=True)], 1, NOW)
    assert stale[0]["reason"] == "StaleData"


def test_carbon_condition_says_trace_data_when_the_region_is_configured_on_a_trace() -> None:
    traced = replace(result(DataSource.TRACE), configured=DataSource.TRACE, error=None)
    c = carbon_condition([], [traced], 1, NOW)
    assert (c[0]["status"], c[0]["reason"]) == ("True", "TraceData")
    assert c[0]["message"] == "europe-west9: trace data from emaps (configured)"
    # Next to a live region the data is still not all live: the reason says trace.
    mixed = carbon_condition([], [result(DataSource.LIVE), traced], 1, NOW)
    assert (mixed[0]["status"], mixed[0]["reason"]) == ("True", "TraceData")
    assert carbon_condition([], [result(DataSource.LIVE)], 1, NOW)[0]["reason"] == "LiveData"
    # The same trace standing in for a live provider is a fallback.
    fallback = carbon_condition([], [result(DataSource.TRACE)], 1, NOW)
    assert (fallback[0]["status"], fallback[0]["reason"]) == ("False", "FallbackData")
    # And a configured trace with no data now (static fills in) is one too.
    ran_out = replace(result(DataSource.STATIC), configured=DataSource.TRACE)
    assert carbon_condition([], [ran_out], 1, NOW)[0]["reason"] == "FallbackData"


def test_the_plan_records_a_trace_as_its_data_source() -> None:
    traced = replace(result(DataSource.TRACE), configured=DataSource.TRACE, error=None)
    assert plan_fields(decision(), traced, NOW)["dataSource"] == "trace"


def test_the_crd_documents_every_data_source_the_plan_may_record() -> None:
    crd = yaml.safe_load((REPO / "crds" / "greentraining.io_greentrainingjobs.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    plan = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["plan"]
    documented, _, _ = plan["properties"]["dataSource"]["description"].partition(":")
    assert set(re.split(r",\s*|\s+or\s+", documented)) == {str(s) for s in DataSource}
