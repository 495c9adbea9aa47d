"""Fuzzing the Kueue annotations (users' pod templates): whatever values the inputs carry, read_inputs
says Unmanaged, Malformed (naming the annotation and the fix) or Managed with a usable plan; it never
raises."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from green_operator.api.manifests import ANN_POWER_LIMIT
from green_operator.kueue.inputs import ANN_DURATION, ANN_MAX_DELAY, INPUTS, Malformed, Managed, Unmanaged, read_inputs
from green_operator.kueue.workload import workload_view

durations = st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{0,3})?(ns|us|ms|s|m|h)?\Z") | st.text(max_size=12)
values = st.one_of(
    durations,
    st.sampled_from(["Auto", "None", "Fixed", "250", "nan", "inf", "-1", "1e400", "2026-12-01T09:00:00Z", "0s"]),
    st.floats().map(str),
    st.text(max_size=30),
)
annotations = st.dictionaries(st.sampled_from(INPUTS), values, max_size=len(INPUTS))
gpus = st.sampled_from(["2", 2, "0", "-1", "x", 2.5, "9" * 30])


def _body(pod_sets: list[tuple[dict[str, str], Any, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "wl", "uid": "u1", "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {
            "podSets": [
                {
                    "name": f"ps{i}",
                    "count": count,
                    "template": {
                        "metadata": {"annotations": ann},
                        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpu}}}]},
                    },
                }
                for i, (ann, gpu, count) in enumerate(pod_sets)
            ]
        },
        "status": {},
    }


# Found by fuzzing: a power limit of "nan" or "inf" was taken; a duration of 1e14 s overflowed.
@example(pod_sets=[({ANN_DURATION: "1h", ANN_MAX_DELAY: "6h", ANN_POWER_LIMIT: "nan"}, "2", 1)])
@example(pod_sets=[({ANN_DURATION: "1h", ANN_MAX_DELAY: "6h", ANN_POWER_LIMIT: "inf"}, "2", 1)])
@example(pod_sets=[({ANN_DURATION: "100000000000000s", ANN_MAX_DELAY: "6h"}, "2", 1)])
@given(pod_sets=st.lists(st.tuples(annotations, gpus, st.integers(0, 64)), min_size=1, max_size=3))
def test_any_annotations_read_as_unmanaged_malformed_or_managed(
    pod_sets: list[tuple[dict[str, str], Any, Any]],
) -> None:
    got = read_inputs(workload_view(_body(pod_sets)))
    event(type(got).__name__)
    if isinstance(got, Managed):
        assert got.duration.total_seconds() > 0
        assert got.gpus >= 1
        watts = got.power.watts
        assert watts is None or (math.isfinite(watts) and watts > 0)
        assert 0 <= got.power.max_slowdown_percent <= 100
    elif isinstance(got, Malformed):
        assert got.annotation in INPUTS
        assert got.fix
    else:
        assert isinstance(got, Unmanaged)
