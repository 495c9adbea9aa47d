"""The report as a table and as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from green_operator.reporting import compute_totals, format_table, report_json, row_from_gtj, rows_from_items
from tests.operator.reporting import samples as s


def _table() -> tuple[str, list[str]]:
    rows = rows_from_items(s.all_jobs())
    text = format_table(rows, compute_totals(rows), s.NOW, notes=["a chart note"])
    return text, text.splitlines()


def _line(lines: list[str], name: str) -> list[str]:
    return next(line for line in lines if line.split()[1:2] == [name]).split()


def test_table_has_a_line_per_job_and_a_total() -> None:
    text, lines = _table()
    assert lines[0].split()[:4] == ["NAMESPACE", "NAME", "PHASE", "REGION"]
    for name in ("good", "worse", "running", "failed", "deferred", "pending"):
        assert _line(lines, name)[0] == "ml"
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "3/6 jobs" in total
    assert "Totals add the 3 of 6 job(s) with measured results" in text
    assert "3.500" in total  # kWh
    assert "450.0" in total
    assert "870.0" in total
    assert "+420.0" in total
    assert f"{100 * 420 / 870:+.1f}%" in total
    assert "note: a chart note" in text


def test_job_lines_show_their_figures() -> None:
    _, lines = _table()
    good = _line(lines, "good")
    assert good[2:4] == ["Succeeded", "europe-west3"]
    assert "05-10" in good
    assert "08:00" in good
    assert "2h" in good
    assert "2.000" in good
    assert "nvml" in good
    assert "+400.0" in good
    assert f"{100 * 400 / 600:+.1f}%" in good
    worse = _line(lines, "worse")
    assert "-30.0" in worse
    assert "-25.0%" in worse
    assert "trace" in worse
    assert "1h+" in _line(lines, "running")  # running for an hour so far
    assert "~2h" in _line(lines, "deferred")  # planned duration
    failed = _line(lines, "failed")
    assert "estimate" in failed
    assert "yes" in failed  # deadline at risk
    assert _line(lines, "good")[-2] == "no"


def test_problem_notes_are_listed() -> None:
    obj = s.succeeded_saving()
    obj["status"]["emissions"]["grams"] = "lots"
    rows = [row_from_gtj(obj)]
    text = format_table(rows, compute_totals(rows), s.NOW)
    assert "note: ml/good: status.emissions.grams: 'lots' is not a number" in text
    assert "0/1 jobs" in text


def test_meter_shows_estimated_pods_of_a_mixed_job() -> None:
    obj = s.succeeded_saving()
    obj["status"]["energy"].update(source="mixed(estimate,nvml)", estimatedPods=2)
    rows = [row_from_gtj(obj)]
    assert "mixed(estimate,nvml) (2 pod(s) est.)" in format_table(rows, compute_totals(rows), s.NOW)


def test_json_rows_and_totals() -> None:
    rows = rows_from_items(s.all_jobs())
    since = datetime(2026, 5, 10, 0, 0, tzinfo=UTC)
    doc = json.loads(json.dumps(report_json(rows, compute_totals(rows), s.NOW, namespace="ml", since=since)))
    assert doc["generatedAt"] == "2026-05-10T12:00:00Z"
    assert doc["since"] == "2026-05-10T00:00:00Z"
    assert doc["namespace"] == "ml"
    by_name = {r["name"]: r for r in doc["rows"]}
    assert list(by_name) == ["good", "worse", "failed", "running", "deferred", "pending"]
    worse = by_name["worse"]
    assert worse["savedGrams"] == -30.0
    assert worse["savedPercent"] == pytest.approx(-25.0)
    assert worse["durationSeconds"] == 3600.0
    assert worse["inTotals"] is True
    assert by_name["running"]["inTotals"] is False
    assert by_name["running"]["emissionsGrams"] is None
    assert by_name["deferred"]["expectedDurationSeconds"] == 7200.0
    assert by_name["failed"]["meter"] == "estimate"
    assert by_name["failed"]["deadlineAtRisk"] is True
    assert by_name["good"]["energyKWh"] == pytest.approx(2.0)
    totals = doc["totals"]
    assert totals["jobs"] == 6
    assert totals["jobsWithResults"] == 3
    assert totals["emissionsGrams"] == pytest.approx(450.0)
    assert totals["baselineGrams"] == pytest.approx(870.0)
    assert totals["savedGrams"] == pytest.approx(420.0)
    assert totals["savedPercent"] == pytest.approx(100 * 420 / 870)
    assert doc["chart"] is None
