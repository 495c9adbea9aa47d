"""What the driver keeps of a child Job (observed.slim_child) reads the same as the whole body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from green_operator.controller.actions import CreateChild
from green_operator.controller.observed import child_state, slim_child
from green_operator.controller.reconcile import reconcile

from . import builders as b


def _manifest(**kw: Any) -> dict[str, Any]:
    acts = reconcile(b.observed(b.body(**kw)))
    return dict(next(a.manifest for a in acts if isinstance(a, CreateChild)))


@pytest.mark.parametrize(
    "state",
    [
        {"suspended": True},
        {"suspended": False, "started": b.at(1), "active": 2, "ready": 1},
        {"suspended": False, "started": b.at(1), "complete_at": b.at(3)},
        {"suspended": False, "started": b.at(1), "failed_at": b.at(2)},
        {"suspended": True, "deleting": True},
    ],
)
def test_the_slim_child_reads_as_the_whole_one(state: dict[str, Any]) -> None:
    whole = b.child_body(_manifest(regions=[b.SOUTH]), **state)
    whole["metadata"]["resourceVersion"] = "42"
    slim = slim_child(whole)
    assert child_state(slim, b.UID) == child_state(whole, b.UID)
    assert child_state(slim, "someone-else") == child_state(whole, "someone-else")
    assert slim["metadata"]["resourceVersion"] == "42"
    assert len(json.dumps(slim)) < len(json.dumps(whole)) / 2
