"""What a paused trainer's report says of its progress is believed only when it is a fraction."""

from __future__ import annotations

import json

import pytest

from green_operator.accounting.reports import TrainerReport, read_report


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        ({"fraction": 0.66}, 0.66),
        ({"fraction": 1}, 1.0),
        ({"fraction": float("nan")}, None),
        ({"fraction": 1.5}, None),
        ({"fraction": -0.1}, None),
        ({"fraction": True}, None),
        ({"fraction": "half"}, None),
        ("0.5", None),
        (None, None),
    ],
)
def test_a_paused_reports_progress_is_believed_only_as_a_fraction(progress: object, expected: float | None) -> None:
    doc: dict[str, object] = {"v": 1, "meter": "nvml", "energyJoules": 10.0, "outcome": "paused"}
    if progress is not None:
        doc["progress"] = progress
    found = read_report(json.dumps(doc), limit_joules=1e9)
    assert isinstance(found, TrainerReport)
    assert found.progress == expected
