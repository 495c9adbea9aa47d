"""`green-operator simulate` end to end on small slices of the real traces."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from green_operator.cli.main import main
from green_operator.simulate.jobs_file import read_jobs_csv

DATA = Path(__file__).resolve().parents[3] / "data" / "carbon"
DE = f"DE={DATA / 'lwa_ger_2020.csv'}"
FR = f"FR={DATA / 'lwa_fr_2020.csv'}"
CA = f"CA={DATA / 'watttime_caiso_north_2023-06.csv'}"

JOBS = """id,submit_time,duration_minutes,gpus,deadline,regions,interruptible
a,2020-03-02T08:10:00Z,120,2,2020-03-02T20:00:00Z,DE,false
b,2020-03-02T09:00:00Z,45,1,2020-03-02T18:00:00Z,DE;FR,true
c,2020-03-02T09:30:00Z,300,4,2020-03-03T06:00:00Z,FR;DE,false
d,2020-03-02T11:05:00Z,60,4,2020-03-02T12:30:00Z,DE,false
e,2020-03-02T13:00:00Z,240,2,2020-03-03T09:00:00Z,DE,false
f,2020-03-02T15:45:00Z,90,1,2020-03-03T02:00:00Z,FR;DE,true
"""


@pytest.fixture
def jobs_file(tmp_path: Path) -> Path:
    p = tmp_path / "jobs.csv"
    p.write_text(JOBS)
    return p


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["simulate", *args, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_exact_forecasts_without_contention_match_the_oracle(
    jobs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run_json(
        capsys, "--trace", DE, "--trace", FR, "--capacity", "DE=64", "--capacity", "FR=64", "--jobs", str(jobs_file)
    )
    t = out["totals"]
    assert len(out["per_job"]) == 6
    assert sum(j["baseline"]["grams"] for j in out["per_job"]) == pytest.approx(t["baseline_grams"], abs=0.1)
    assert t["plan_grams"] < t["baseline_grams"]
    assert t["oracle_lower_bound_grams"] <= t["oracle_grams"] + 1e-6
    # Every job's own best window lies in the planner's horizon: the plan is the optimum.
    assert t["plan_grams"] == pytest.approx(t["oracle_grams"], rel=1e-6)
    assert t["plan_capture_of_oracle_savings"] == pytest.approx(1.0, abs=1e-5)
    assert out["deadlines_missed"] == {"baseline": 0, "plan": 0, "oracle": 0}
    moved_to_fr = next(j for j in out["per_job"] if j["id"] == "c")
    assert moved_to_fr["plan"]["region"] == "FR"  # France's grid is far cleaner than Germany's


def test_capacity_is_respected_under_pressure(jobs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run_json(
        capsys, "--trace", DE, "--trace", FR, "--capacity", "DE=4", "--capacity", "FR=4", "--jobs", str(jobs_file)
    )
    for arm in ("baseline", "plan", "oracle"):
        spans = []
        for j in out["per_job"]:
            r = j[arm]
            start = datetime.fromisoformat(r["start"].replace("Z", "+00:00"))
            spans.append((r["region"], start, start + timedelta(minutes=r["duration_minutes"]), j["gpus"]))
        for region, s, _, _ in spans:
            busy = sum(g for rr, a, b, g in spans if rr == region and a <= s < b)
            assert busy <= 4, arm
    t = out["totals"]
    assert t["oracle_lower_bound_grams"] <= t["plan_grams"] + 1e-6


def test_forecast_error_is_seeded(jobs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--trace", DE, "--trace", FR, "--capacity", "DE=8", "--capacity", "FR=8", "--jobs", str(jobs_file)]
    args += ["--forecast-error", "0.3", "--no-oracle", "--summary"]
    first = _run_json(capsys, *args, "--seed", "7")
    again = _run_json(capsys, *args, "--seed", "7")
    assert first == again
    assert "oracle_grams" not in first["totals"]
    assert "per_job" not in first


def test_text_output_and_power_auto(jobs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--trace", DE, "--trace", FR, "--capacity", "DE=16", "--capacity", "FR=16"]
    args += ["--jobs", str(jobs_file), "--gpu-model", "H100", "--power-policy", "Auto"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "baseline (run now)" in text
    assert "oracle (lower bound)" in text
    assert "The plan captures" in text
    assert text.count("\n") > 10  # per-job rows


def test_traces_from_another_year_need_alignment(
    jobs_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    june = tmp_path / "june.csv"
    june.write_text(JOBS.replace("2020-03-02", "2020-06-15").replace("2020-03-03", "2020-06-16").replace("FR", "CA"))
    args = ["simulate", "--trace", DE, "--trace", CA, "--trace-scale", "CA=0.453592"]
    args += ["--capacity", "DE=8", "--capacity", "CA=8", "--jobs", str(june), "--no-oracle", "--json"]
    assert main(args) == 2
    assert "--align-traces" in capsys.readouterr().err
    assert main([*args, "--align-traces"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regions"]["CA"]["trace_shift_days"] % 7 == 0
    assert out["regions"]["CA"]["trace_shift_days"] < 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", DE, "--jobs", "JOBS"], "--capacity"),
        (["--trace", DE, "--capacity", "DE=x", "--jobs", "JOBS"], "whole number"),
        (["--trace", "DE", "--capacity", "DE=1", "--jobs", "JOBS"], "REGION=FILE"),
        (["--trace", DE, "--capacity", "FR=1", "--jobs", "JOBS"], "no --capacity for region(s) DE"),
        (["--trace", DE, "--capacity", "DE=1", "--jobs", "missing.csv"], "cannot read jobs file"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    args: list[str], message: str, jobs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(jobs_file) if a == "JOBS" else a for a in args]
    assert main(["simulate", *args]) == 2
    assert message in capsys.readouterr().err


def test_jobs_naming_unknown_regions_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "j.csv"
    p.write_text(JOBS.replace("DE;FR", "DE;XX"))
    assert (
        main(["simulate", "--trace", DE, "--trace", FR, "--capacity", "DE=1", "--capacity", "FR=1", "--jobs", str(p)])
        == 2
    )
    assert "XX" in capsys.readouterr().err


def test_generate_writes_a_usable_reproducible_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (a, b):
        args = ["simulate", "generate", "--regions", "DE,FR", "--start", "2020-03-02T00:00:00Z"]
        assert main([*args, "--days", "2", "--jobs-per-day", "30", "--seed", "3", "--out", str(out)]) == 0
    assert a.read_text() == b.read_text()
    jobs = read_jobs_csv(a)
    assert 30 <= len(jobs) <= 90
    for j in jobs:
        assert j.deadline > j.submit_time + j.duration - timedelta(seconds=1)
        assert set(j.regions) <= {"DE", "FR"}
        assert j.gpus >= 1
    assert main(["simulate", "generate", "--regions", "", "--start", "2020-03-02"]) == 2
    capsys.readouterr()


def test_interruptible_jobs_are_paused_only_when_asked(jobs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--trace", DE, "--trace", FR, "--capacity", "DE=64", "--capacity", "FR=64", "--jobs", str(jobs_file)]
    one_piece = _run_json(capsys, *args, "--no-oracle")
    segments = _run_json(
        capsys, *args, "--no-oracle", "--interruptible", "--min-segment-minutes", "30", "--resume-overhead-minutes", "0"
    )
    assert segments["deadlines_missed"]["plan"] == 0
    # Pausing is a choice the planner may take, never a cost it must pay: no worse than one piece.
    assert segments["totals"]["plan_grams"] <= one_piece["totals"]["plan_grams"] + 1e-6
