"""The periodic joint re-plan against the real API server: deferred jobs competing for a full clean
window are re-planned together, moved through each job's own reconcile, and every deadline holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from green_operator.planner.grid import slot_floor
from green_operator.times import rfc3339
from harness.waiting import wait_for
from tests.support.gtjs import SLOT, create, gtj, phase_is, status, ts
from tests.support.operator_config import TraceGrid, make_config

pytestmark = pytest.mark.integration

REGION = "europe-west2"  # 16 GPUs: two 8-GPU jobs at a time


def traces(now: datetime) -> TraceGrid:
    """Dirty (400) until +90 s, clean (50) for 20 s, 300 until +150 s, nearly clean (60) for 20 s,
    then 300; the other regions stay dirtier still."""
    start = now - timedelta(minutes=2)
    tr = TraceGrid(start=start, step=SLOT)
    n = int(timedelta(minutes=30) / SLOT)
    for i, region in enumerate(("europe-west2", "europe-west3", "europe-west9", "us-west2")):
        tr.values[region] = [500.0 + i] * n
    for k in range(n):
        s = (start + SLOT * k - now).total_seconds()
        value = 400.0 if s < 90 else 50.0 if s < 110 else 300.0 if s < 150 else 60.0 if s < 170 else 300.0
        tr.values[REGION][k] = value
    return tr


def test_deferred_jobs_competing_for_a_clean_window_are_replanned_jointly(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = slot_floor(datetime.now(UTC), SLOT)  # windows on the planner's slot grid
    at = lambda s: rfc3339(now + timedelta(seconds=s))  # noqa: E731
    config = make_config(
        tmp_path,
        traces(now),
        slot=SLOT,
        horizon=timedelta(minutes=10),
        replan=timedelta(seconds=5),
        planner={"jointReplanMaxMoves": 100},  # off by default
    )
    first = operator_factory(config, "first")
    # Two flexible jobs fill the clean window (16 GPUs) first.
    for name in ("flex-a", "flex-b"):
        create(namespace, gtj(name, duration="20s", deadline=at(270), regions=[REGION], gpus=8))
    for name in ("flex-a", "flex-b"):
        st = wait_for(lambda n=name: phase_is(namespace, n, "Deferred"), timeout=30, message=f"{name} deferred")
        assert st["plannedStart"] == at(90)
    # The urgent job arrives in a burst (with 8 small jobs elsewhere, seen at once by a restarted
    # operator): first decisions in a burst move nobody aside, so it is left dirty hours.
    first.stop()
    create(namespace, gtj("urgent", duration="20s", deadline=at(145), regions=[REGION], gpus=8))
    for i in range(8):
        create(namespace, gtj(f"filler-{i}", duration="10s", max_delay="1m", regions=["us-west2"]))
    operator_factory(config, "second")
    st = wait_for(lambda: phase_is(namespace, "urgent", "Deferred"), timeout=30, message="urgent deferred")
    assert st["plannedStart"] != at(90)

    def swapped() -> dict[str, dict[str, Any]] | None:
        sts = {n: status(namespace, n) for n in ("flex-a", "flex-b", "urgent")}
        starts = {n: s.get("plannedStart") for n, s in sts.items()}
        later = [n for n in ("flex-a", "flex-b") if starts[n] == at(150)]
        return sts if starts["urgent"] == at(90) and len(later) == 1 else None

    # Only the joint re-plan moves a flexible job to a dirtier window (its own re-plans keep the
    # cleanest), making room the urgent job takes (by the same move, or by its own next re-plan).
    sts = wait_for(swapped, timeout=45, message="the joint re-plan to give the urgent job the clean window")
    moved = next(n for n in ("flex-a", "flex-b") if sts[n]["plannedStart"] == at(150))
    assert "moved aside for the periodic joint re-plan" in sts[moved]["plan"]["reason"]
    events = client.CoreV1Api().list_namespaced_event(namespace, field_selector=f"involvedObject.name={moved}").items
    assert any(e.reason == "Replanned" for e in events)

    for name in ("urgent", "flex-a", "flex-b"):
        st = wait_for(lambda n=name: phase_is(namespace, n, "Succeeded"), timeout=150, message=f"{name} succeeded")
        assert ts(st["startTime"]) <= ts(st["latestStart"])  # the promise
        assert st["plan"]["extrapolatedHours"] == 0
