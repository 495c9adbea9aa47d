"""Fuzzing spec parsing: whatever a stored GreenTrainingJob's spec holds (the CRD's schema checks new
objects, not ones stored under an older schema, nor every range), parse_spec returns a spec or a
non-empty list of problems that each name a field; it never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from green_operator.api.spec import SpecProblem, TrainingJobSpec, parse_spec
from tests.support.fuzz import json_values, mutated

REGIONS = ("europe-west3", "europe-west9")
META = {"name": "job", "namespace": "ml", "uid": "u-1", "generation": 1, "creationTimestamp": "2026-11-25T10:00:00Z"}
VALID: dict[str, Any] = {
    "estimatedDuration": "2h",
    "schedule": {"maxDelay": "6h"},
    "parallelism": 2,
    "backoffLimit": 1,
    "placement": {"regions": ["europe-west3"]},
    "power": {"policy": "Fixed", "gpuPowerLimitWatts": 250, "maxSlowdownPercent": 10},
    "template": {"spec": {"containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}},
    "job": {
        "ttlSecondsAfterFinished": 3600,
        "activeDeadlineSeconds": 86400,
        "backoffLimitPerIndex": 1,
        "maxFailedIndexes": 1,
        "podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]},
    },
}
durations = st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{0,3})?(ns|us|ms|s|m|h|d)?\Z") | st.text(max_size=12)
edits = st.fixed_dictionaries(
    {},
    optional={
        "estimatedDuration": durations,
        "schedule": st.fixed_dictionaries({}, optional={"maxDelay": durations, "deadline": st.text(max_size=30)}),
    },
)


# Found by the fuzz profile: the CRD's pattern admits "0.0001ms", which timedelta rounds to zero.
@example(spec={**VALID, "estimatedDuration": "0.0001ms"}, check=True)
@given(spec=mutated(VALID) | json_values | edits.map(lambda e: {**VALID, **e}), check=st.booleans())
def test_any_spec_parses_or_is_refused_field_by_field(spec: Any, check: bool) -> None:
    out = parse_spec({"metadata": META, "spec": spec}, REGIONS, check_regions=check)
    event("parsed" if isinstance(out, TrainingJobSpec) else "refused")
    if isinstance(out, TrainingJobSpec):
        assert out.estimated_duration.total_seconds() > 0
        assert out.latest_start <= out.deadline
        assert out.gpus >= 1
    else:
        assert out, "a spec that does not parse says why"
        assert all(isinstance(p, SpecProblem) and p.field.startswith("spec") and p.message for p in out)
