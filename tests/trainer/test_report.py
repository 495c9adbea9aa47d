import json
import logging
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from green_trainer.meters import MeterName
from green_trainer.power_limit import LimitCode, PowerLimitOutcome
from green_trainer.progress_files import Progress
from green_trainer.report import MAX_BYTES, SCHEMA_PATH, build_report, encode_report, rfc3339, write_report
from green_trainer.sampler import GpuSnapshot, Snapshot

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=90, milliseconds=250)
APPLIED = PowerLimitOutcome(250.0, 250.0, True, LimitCode.APPLIED, "", restored=True)


def _gpus(count, model="NVIDIA H100 80GB HBM3"):
    return tuple(
        GpuSnapshot(
            index=i,
            uuid=f"GPU-{i:08x}-aaaa-bbbb-cccc-ddddeeeeffff",
            model=model,
            meter=MeterName.NVML,
            energy_joules=1_234_567.891 + i,
            power_watts=245.0,
            utilization_ratio=0.97,
            power_limit_watts=250.0,
        )
        for i in range(count)
    )


def _snapshot(gpus):
    return Snapshot(
        meter=MeterName.NVML,
        energy_by_meter={MeterName.NVML: sum(g.energy_joules for g in gpus)},
        gpus=gpus,
        progress=Progress(samples=1_000_000, steps=15_625, tokens=512_000_000),
        carbon_intensity=42.0,
        emissions_grams_by_meter={MeterName.NVML: 123.456},
    )


def test_schema_file_is_shipped_in_the_package(report_schema):
    assert SCHEMA_PATH.is_file()
    assert json.loads(SCHEMA_PATH.read_text()) == report_schema
    jsonschema.Draft202012Validator.check_schema(report_schema)


def test_report_carries_what_the_operator_parses(report_schema):
    snapshot = _snapshot(_gpus(2))
    report = json.loads(encode_report(build_report(snapshot, APPLIED, START, END, 0)))
    jsonschema.validate(report, report_schema)
    assert report["v"] == 1
    assert report["meter"] == "nvml"
    assert report["energyJoules"] == pytest.approx(2 * 1_234_567.891 + 1, abs=1e-3)
    assert [g["index"] for g in report["gpus"]] == [0, 1]
    assert report["gpus"][1]["energyJoules"] == pytest.approx(1_234_568.891)
    assert report["powerLimit"] == {
        "requestedWatts": 250.0,
        "appliedWatts": 250.0,
        "applied": True,
        "code": "Applied",
        "reason": "",
        "restored": True,
    }
    assert report["start"] == "2026-03-01T12:00:00.000Z"
    assert report["end"] == "2026-03-01T13:30:00.250Z"
    assert report["durationSeconds"] == 5400.25
    assert (report["samples"], report["steps"], report["tokens"]) == (1_000_000, 15_625, 512_000_000)
    assert report["exitCode"] == 0
    kwh = report["energyJoules"] / 3.6e6
    assert report["carbon"]["grams"] == 123.456
    assert report["carbon"]["gramsPerKwh"] == pytest.approx(123.456 / kwh, rel=1e-3)
    assert "terminatedBy" not in report
    assert "truncated" not in report


def test_eight_gpus_with_long_names_and_reasons_fit_in_4_kib(report_schema):
    outcome = PowerLimitOutcome(150.0, 200.0, True, LimitCode.CLAMPED, "x" * 5000, restored=True)
    snapshot = _snapshot(_gpus(8, model="NVIDIA H100 80GB HBM3 with a rather long marketing name " * 2))
    text = encode_report(build_report(snapshot, outcome, START, END, 143, terminated_by="SIGTERM"))
    assert len(text.encode()) <= MAX_BYTES
    report = json.loads(text)
    jsonschema.validate(report, report_schema)
    assert len(report["gpus"]) == 8
    assert "uuid" in report["gpus"][0]
    assert report["terminatedBy"] == "SIGTERM"
    assert report["exitCode"] == 143


def test_too_many_gpus_shed_detail_instead_of_breaking_the_json(report_schema):
    snapshot = _snapshot(_gpus(64))
    text = encode_report(build_report(snapshot, APPLIED, START, END, 0))
    assert len(text.encode()) <= MAX_BYTES
    report = json.loads(text)
    jsonschema.validate(report, report_schema)
    assert report["truncated"] is True
    assert report["energyJoules"] == pytest.approx(snapshot.energy_joules, abs=1e-3)


def test_no_intensity_means_null_carbon(report_schema):
    snapshot = Snapshot(meter=MeterName.ESTIMATE, energy_by_meter={MeterName.ESTIMATE: 10.0})
    outcome = PowerLimitOutcome(None, None, False, LimitCode.NOT_REQUESTED, "no limit requested")
    report = build_report(snapshot, outcome, START, END, 0)
    jsonschema.validate(report, report_schema)
    assert report["carbon"] == {"gramsPerKwh": None, "grams": None}
    assert report["gpus"] == []


def test_an_unwritable_path_is_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert write_report(tmp_path / "missing-dir" / "termination-log", "{}") is False
    assert "GREEN_REPORT_PATH" in caplog.text
    assert write_report(tmp_path / "termination-log", '{"v":1}') is True
    assert (tmp_path / "termination-log").read_text() == '{"v":1}'


def test_rfc3339_is_utc_with_z():
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    assert rfc3339(moment) == "2026-01-02T03:04:05.678Z"
    assert rfc3339(moment.astimezone(UTC).replace(tzinfo=UTC)).endswith("Z")
