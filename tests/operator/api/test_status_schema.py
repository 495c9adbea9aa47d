"""The status-schema check the properties rely on (tests/support/status_schema.py) refuses what the
apiserver refuses, and takes what the operator writes."""

from __future__ import annotations

from tests.support.status_schema import status_errors

GOOD = {
    "phase": "Succeeded",
    "startTime": "2026-11-25T10:00:00Z",
    "plan": {"powerLimitWatts": None, "intensityForecast": 120.5},
    "energy": {"joules": 3.6e6, "source": "nvml", "estimatedPods": 0, "refusedReports": 0, "live": False},
    "conditions": [
        {
            "type": "Succeeded",
            "status": "True",
            "lastTransitionTime": "2026-11-25T11:00:00Z",
            "reason": "JobComplete",
            "message": "ok",
        }
    ],
}


def test_a_status_the_operator_writes_validates() -> None:
    assert status_errors(GOOD) == []


def test_what_the_apiserver_would_refuse_is_named() -> None:
    bad = {
        **GOOD,
        "phase": "Bogus",
        "startTime": "yesterday",
        "energy": {"joules": float("nan"), "refusedReports": -1},
        "conditions": [{"type": "Succeeded"}],
    }
    errors = "\n".join(status_errors(bad))
    assert "status.phase: 'Bogus' is not one of" in errors
    assert "status.startTime: 'yesterday' is not a 'date-time'" in errors
    assert "status.energy.joules: nan is not a JSON number" in errors
    assert "status.energy.refusedReports: -1 is less than the minimum of 0" in errors
    assert "status.conditions.0: 'reason' is a required property" in errors
