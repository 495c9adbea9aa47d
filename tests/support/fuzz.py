"""Hypothesis strategies for fuzzing untrusted input: arbitrary JSON, and mutations of real shapes.

The number of cases comes from the Hypothesis profile (tests/conftest.py): `unit` by default,
`fuzz` (HYPOTHESIS_PROFILE=fuzz, `make fuzz`) for a longer dedicated run.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import strategies as st

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "2020-06-01T00:00:00Z", "2020-06-01T00:30Z", "00:05:00", "1.00:00:00", "NaN", "-1"])
)

json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
"""Any JSON document (NaN and infinities included: Python's json reads them)."""


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):  # the first few items stand for the rest
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_mutations: int = 3) -> Any:
    """A real document with a few random edits: a value replaced, a key dropped, a list emptied or cut."""
    out = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = _paths(out)
        path = draw(st.sampled_from(paths))
        parent: Any = None
        node = out
        for key in path:
            parent, node = node, node[key]
        kind = draw(st.sampled_from(["replace", "drop", "truncate", "duplicate"]))
        if kind == "replace" or parent is None:
            value = draw(json_values)
            if parent is None:
                out = value
            else:
                parent[path[-1]] = value
        elif kind == "drop":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        elif kind == "truncate" and isinstance(node, list):
            del node[draw(st.integers(0, len(node))) :]
        elif kind == "duplicate" and isinstance(node, list) and node:
            node.append(copy.deepcopy(node[0]))
    return out


REAL_REPORT = {
    "v": 1,
    "meter": "nvml",
    "energyJoules": 3600.0,
    "gpus": [{"index": 0, "uuid": "GPU-1", "model": "H100", "meter": "nvml", "energyJoules": 3600.0}],
    "powerLimit": {"requestedWatts": 250, "appliedWatts": 250, "applied": True, "code": "Applied", "reason": ""},
    "start": "2026-03-01T12:00:00.000Z",
    "end": "2026-03-01T13:00:00.000Z",
    "durationSeconds": 3600.0,
    "exitCode": 0,
}
"""The shape green-trainer writes (trainer-image/src/green_trainer/schema/report-v1.schema.json)."""

claimed_energy: st.SearchStrategy[str] = (
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e15, 10**400])
    | st.floats()
    | st.integers(min_value=-(10**400), max_value=10**400)
).map(lambda j: json.dumps({**REAL_REPORT, "energyJoules": j}))
"""The real report's shape claiming any energy: NaN, infinities, negative, beyond any GPU, huge integers."""

termination_messages: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    json_values.map(json.dumps),
    mutated(REAL_REPORT).map(json.dumps),
    st.deferred(lambda: claimed_energy),
    st.integers(0, 2000).map(lambda n: '{"a":' + "[" * n + "]" * n + "}"),  # deeper than json recurses
    st.integers(4000, 6000).map(lambda n: '{"energyJoules":1' + " " * n + "}"),  # over the 4096-byte cap
)
"""What a pod may leave in its termination message instead of a trainer report."""
