"""Report rows from GreenTrainingJob statuses, and the totals over them."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from green_operator.reporting import compute_totals, row_from_gtj, rows_from_items
from tests.operator.reporting import samples as s


def test_finished_job_row_reads_every_figure() -> None:
    row = row_from_gtj(s.succeeded_saving())
    assert (row.namespace, row.name, row.phase, row.region) == ("ml", "good", "Succeeded", "europe-west3")
    assert row.energy_kwh == pytest.approx(2.0)
    assert row.meter == "nvml"
    assert (row.grams, row.baseline_grams, row.saved_grams) == (200.0, 600.0, 400.0)
    assert row.saved_percent == pytest.approx(100 * 400 / 600)
    assert row.duration(s.NOW) == timedelta(hours=2)
    assert row.data_source == "live"
    assert row.deadline_at_risk is False
    assert row.has_results
    assert row.problems == ()


def test_negative_saving_is_kept_negative() -> None:
    row = row_from_gtj(s.succeeded_worse())
    assert row.saved_grams == -30.0
    assert row.saved_percent == pytest.approx(-25.0)
    assert row.baseline_region == "europe-west3"


def test_running_job_has_no_results_and_an_open_duration() -> None:
    row = row_from_gtj(s.running())
    assert row.phase == "Running"
    assert (row.energy_joules, row.grams, row.baseline_grams, row.saved_grams) == (None, None, None, None)
    assert not row.has_results
    assert row.problems == ()  # no results at all is normal, not a problem
    assert row.duration(s.NOW) == timedelta(hours=1)  # 11:00 until now (12:00)
    assert row.window(s.NOW) == (row.start_time, s.NOW)


def test_failed_job_with_estimated_energy_counts_and_flags_risk() -> None:
    row = row_from_gtj(s.failed_estimated())
    assert row.phase == "Failed"
    assert row.meter == "estimate"
    assert row.estimated_pods == 1
    assert row.energy_kwh == pytest.approx(0.5)
    assert row.deadline_at_risk is True
    assert row.has_results


def test_deferred_job_window_is_the_plan() -> None:
    row = row_from_gtj(s.deferred())
    assert row.planned_only
    assert row.duration(s.NOW) is None
    assert row.window(s.NOW) == (row.planned_start, row.planned_start + timedelta(hours=2))  # type: ignore[operator]


def test_job_without_status_is_pending() -> None:
    row = row_from_gtj(s.pending())
    assert row.phase == "Pending"
    assert row.region is None
    assert row.window(s.NOW) is None


def test_saved_computed_when_status_lacks_it() -> None:
    obj = s.succeeded_worse()
    del obj["status"]["emissions"]["savedGrams"]
    row = row_from_gtj(obj)
    assert row.saved_grams == pytest.approx(120.0 - 150.0)


def test_energy_falls_back_to_the_display_kwh() -> None:
    obj = s.succeeded_saving()
    del obj["status"]["energy"]["joules"]
    assert row_from_gtj(obj).energy_kwh == pytest.approx(2.0)


def test_plan_flag_marks_risk_when_no_condition() -> None:
    obj = s.deferred()
    del obj["status"]["conditions"]
    obj["status"]["plan"]["deadlineAtRisk"] = True
    assert row_from_gtj(obj).deadline_at_risk is True


def test_bad_field_is_skipped_with_a_note_and_kept_out_of_totals() -> None:
    obj = s.succeeded_saving()
    obj["status"]["emissions"]["grams"] = "lots"
    obj["status"]["startTime"] = "yesterday"
    row = row_from_gtj(obj)
    assert row.grams is None
    assert row.start_time is None
    assert any("status.emissions.grams" in p for p in row.problems)
    assert any("status.startTime" in p and "RFC 3339" in p for p in row.problems)
    assert any("not in the totals" in p for p in row.problems)
    assert not row.has_results
    totals = compute_totals([row, row_from_gtj(s.succeeded_worse())])
    assert totals.with_results == 1
    assert totals.grams == 150.0


def test_totals_sum_measured_results_only() -> None:
    rows = rows_from_items(s.all_jobs())
    t = compute_totals(rows)
    assert t.jobs == 6
    assert t.with_results == 3  # good, worse, failed; running, deferred and pending have no results
    assert t.energy_kwh == pytest.approx(2.0 + 1.0 + 0.5)
    assert t.grams == pytest.approx(200 + 150 + 100)
    assert t.baseline_grams == pytest.approx(600 + 120 + 150)
    assert t.saved_grams == pytest.approx(400 - 30 + 50)  # the negative saving is subtracted, not clipped
    assert t.saved_grams == pytest.approx(t.baseline_grams - t.grams)
    assert t.saved_percent == pytest.approx(100 * 420 / 870)
    assert t.deadline_at_risk == 1
    assert t.estimated_energy_jobs == 1


def test_totals_can_be_negative() -> None:
    t = compute_totals([row_from_gtj(s.succeeded_worse())])
    assert t.saved_grams == -30.0
    assert t.saved_percent == pytest.approx(-25.0)


def test_totals_of_nothing() -> None:
    t = compute_totals([])
    assert (t.jobs, t.with_results, t.grams, t.saved_grams) == (0, 0, 0.0, 0.0)
    assert t.saved_percent is None


def test_each_job_once() -> None:
    items = [s.succeeded_saving(), copy.deepcopy(s.succeeded_saving())]
    rows = rows_from_items(items)
    assert len(rows) == 1
    assert compute_totals(rows).grams == 200.0
    row = row_from_gtj(s.succeeded_saving())
    with pytest.raises(ValueError, match="counted twice: ml/good"):
        compute_totals([row, row])


def test_rows_sorted_by_namespace_then_creation() -> None:
    other = s.gtj("zzz", None, namespace="aaa", created="2026-05-10T11:00:00Z")
    rows = rows_from_items([*reversed(s.all_jobs()), other])
    assert [r.key for r in rows] == [
        "aaa/zzz",
        "ml/good",
        "ml/worse",
        "ml/failed",
        "ml/running",
        "ml/deferred",
        "ml/pending",
    ]
