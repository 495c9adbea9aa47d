"""Fuzzing the trainer report across the pod boundary. The writer: whatever the run measured (up to 64
GPUs, long multibyte names, long reasons), the report fits the kubelet's 4096-byte termination
message, matches its schema, and the operator accepts it with the same energy. The reader: whatever a
pod writes instead (any text, any JSON, mutations of a real report), the operator accepts, ignores or
refuses it with a reason, and never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from green_operator.accounting.reports import MAX_REPORT_BYTES, Refused, TrainerReport, max_joules, read_report
from green_trainer.meters import MeterName
from green_trainer.power_limit import LimitCode, PowerLimitOutcome
from green_trainer.progress_files import Progress
from green_trainer.report import MAX_BYTES, SCHEMA_PATH, build_report, encode_report
from green_trainer.sampler import GpuSnapshot, Snapshot
from tests.support.fuzz import termination_messages

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCHEMA = json.loads(SCHEMA_PATH.read_text())
H100_WATTS = 700.0

meters = st.sampled_from(list(MeterName))
names = st.text(max_size=120)


@st.composite
def runs(draw: st.DrawFn) -> tuple[Snapshot, PowerLimitOutcome, timedelta, int, str | None]:
    seconds = draw(st.floats(min_value=0, max_value=30 * 86400))
    count = draw(st.integers(0, 64))
    joules = st.floats(min_value=0, max_value=H100_WATTS * seconds)
    gpus = tuple(
        GpuSnapshot(i, draw(names), draw(names), draw(meters), draw(joules), None, None, draw(st.none() | joules))
        for i in range(count)
    )
    meter = draw(meters)
    total = sum(g.energy_joules for g in gpus) if gpus else draw(joules)
    snapshot = Snapshot(
        meter=meter,
        energy_by_meter={meter: total},
        gpus=gpus,
        progress=Progress(*(draw(st.integers(0, 2**62)) for _ in range(3))),
        carbon_intensity=draw(st.none() | st.floats(0, 2000)),
        emissions_grams_by_meter=draw(st.just({}) | st.builds(lambda g: {meter: g}, st.floats(0, 1e9))),
    )
    watts = st.none() | st.floats(1, 2000)
    limit = PowerLimitOutcome(
        draw(watts), draw(watts), draw(st.booleans()), draw(st.sampled_from(list(LimitCode))), draw(st.text()), None
    )
    signal = draw(st.none() | st.from_regex(r"\ASIG[A-Z0-9]{1,8}\Z"))
    return snapshot, limit, timedelta(seconds=seconds), draw(st.integers(0, 255)), signal


@given(run=runs())
def test_every_report_the_trainer_writes_fits_validates_and_is_accepted(
    run: tuple[Snapshot, PowerLimitOutcome, timedelta, int, str | None],
) -> None:
    snapshot, limit, duration, code, signal = run
    text = encode_report(build_report(snapshot, limit, START, START + duration, code, terminated_by=signal))
    assert len(text.encode()) <= MAX_BYTES == MAX_REPORT_BYTES
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    event("truncated" if doc.get("truncated") else "whole")
    found = read_report(text, max_joules(len(snapshot.gpus), duration.total_seconds()))
    assert isinstance(found, TrainerReport), found
    assert found.joules == pytest.approx(snapshot.energy_joules, abs=1e-3)
    assert found.meter == snapshot.meter.value


@given(message=termination_messages, gpus=st.integers(0, 64), seconds=st.none() | st.floats(-10, 1e9))
def test_whatever_a_pod_writes_is_accepted_ignored_or_refused(message: str, gpus: int, seconds: float | None) -> None:
    found = read_report(message, max_joules(gpus, seconds))
    event(type(found).__name__ if found is not None else "ignored")
    if isinstance(found, TrainerReport):
        assert 0 <= found.joules <= max_joules(gpus, seconds)
        assert len(found.power_reason) <= 300
    elif isinstance(found, Refused):
        assert found.detail
    else:
        assert found is None
