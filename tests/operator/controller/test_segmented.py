"""Interruptible jobs in the decision core: a walk on a fake clock through plan, start, pause (the
Job suspended, the paused pods' reports read and let go), resume and the end, with every segment's
energy summed; no progress across a pause; a resume that finds its GPUs taken."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from green_operator.accounting.segments import segmented_windows
from green_operator.accounting.settle import EnergyTotal
from green_operator.api import conditions as cond
from green_operator.api.interruption import REPORT_FINALIZER
from green_operator.controller.actions import (
    Action,
    Book,
    CreateChild,
    Done,
    Emit,
    ReleasePod,
    Requeue,
    SetSuspended,
    WriteStatus,
)
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.observed import AccountingInputs, HeldPod, PodsSummary, child_state
from green_operator.planner import Reservation

from .builders import (
    CLEAN,
    DIRTY,
    NORTH,
    NS,
    REGIONS,
    UID,
    at,
    body,
    child_body,
    flat,
    forecasts,
    merge,
    observed,
    result,
)

KEY = f"{NS}/job"


def two_windows(t: datetime) -> float:
    """Clean 1-3 h and 6-8 h after T0, dirty otherwise."""
    return CLEAN if at(1) <= t < at(3) or at(6) <= t < at(8) else DIRTY


def interruptible(duration: str = "3h", max_delay: str = "9h", **interruption: Any) -> dict[str, Any]:
    b = body(duration=duration, max_delay=max_delay, regions=[NORTH])
    b["spec"]["interruption"] = {"policy": "Checkpointed", "minSegment": "1h", "resumeOverhead": "0s", **interruption}
    return b


def report(joules: float, fraction: float | None) -> str:
    doc: dict[str, Any] = {"v": 1, "meter": "nvml", "energyJoules": joules, "outcome": "paused"}
    if fraction is not None:
        doc["progress"] = {"fraction": fraction}
    return json.dumps(doc)


@dataclass
class World:
    """The API as the decision core sees it, applied by hand: status, child, held pods, Events."""

    b: dict[str, Any]
    ledger: CapacityLedger = field(default_factory=lambda: CapacityLedger(REGIONS, timedelta(hours=24)))
    status: dict[str, Any] = field(default_factory=dict)
    child: dict[str, Any] | None = None
    held: list[HeldPod] = field(default_factory=list)
    events: list[Emit] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    suspends: list[tuple[datetime, bool]] = field(default_factory=list)
    pause_report: str = ""
    capacity: int = 16
    checkpointed_at_once: bool = True

    def step(self, now: datetime, *, final_joules: float = 0.0) -> list[Action]:
        c = child_state(self.child, UID) if self.child is not None else None
        acc = None
        if c is not None and c.finished:
            windows = segmented_windows(self.status, c.completion_time, NORTH, now)
            acc = AccountingInputs(
                EnergyTotal(final_joules, "nvml", 0, None, ""),
                windows,
                result(NORTH, two_windows, windows.actual.start),
                result(NORTH, flat(DIRTY), windows.baseline.start),
            )
        o = observed(
            self.b,
            status=self.status,
            child=c,
            now=now,
            ledger=self.ledger.view(KEY, now),
            data=forecasts(now, north=two_windows, capacity=self.capacity),
            pods=PodsSummary(held=tuple(self.held)),
            accounting=acc,
        )
        from green_operator.controller.reconcile import reconcile

        acts = reconcile(o)
        for a in acts:
            match a:
                case Book():
                    self.ledger.apply(KEY, a)
                case CreateChild(manifest):
                    self.child = child_body(manifest)
                case SetSuspended(suspended):
                    assert self.child is not None
                    self.suspends.append((now, suspended))
                    self.child["spec"]["suspend"] = suspended
                    if suspended:  # the Job controller deletes the pods; our finalizer holds them
                        self.child["status"].update(active=0, ready=0)
                        self.held = [HeldPod("job-a1", self.checkpointed_at_once, self.pause_report, "", "")]
                    else:
                        self.child["status"].update(active=1, ready=1, startTime=now.isoformat())
                case WriteStatus(patch):
                    self.status = merge(self.status, patch)
                case Emit():
                    self.events.append(a)
                case ReleasePod(name):
                    self.released.append(name)
                    self.held = [h for h in self.held if h.name != name]
        return acts

    def run_until(self, end: datetime, start: datetime) -> datetime:
        """Step as the driver would: at once after Requeue(0), else after the requeue."""
        now = start
        while now < end:
            acts = self.step(now)
            if any(isinstance(a, Done) for a in acts):
                break
            after = next(a.after for a in acts if isinstance(a, Requeue))
            now = now + timedelta(seconds=max(after, 0.0)) if after > 0 else now + timedelta(microseconds=1)
        return now

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def segment_states(status: Mapping[str, Any]) -> list[str]:
    return [s["state"] for s in status.get("segments") or []]


def test_manifest_carries_the_grace_period_and_the_report_finalizer() -> None:
    w = World(interruptible(checkpointGracePeriod="2m"))
    w.step(at(0))
    assert w.child is not None
    pod = w.child["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 120
    assert REPORT_FINALIZER in pod["metadata"]["finalizers"]
    assert w.child["spec"]["suspend"] is True


def test_a_job_pauses_and_resumes_along_its_segments_and_sums_every_segment() -> None:
    w = World(interruptible(), pause_report=report(1.8e6, 0.66))
    w.step(at(0))
    assert w.status["phase"] == "Deferred"
    assert segment_states(w.status) == ["Planned", "Planned"]
    first, second = w.status["segments"]
    assert (first["start"], first["end"]) == ("2026-03-02T11:00:00Z", "2026-03-02T13:00:00Z")
    assert second["start"] == "2026-03-02T16:00:00Z"
    assert second["resume"] is True

    w.run_until(at(8), at(0) + timedelta(microseconds=1))
    # Released at 11:00, paused at 13:00 (its report read and its pod let go), resumed at 16:00.
    assert [(t.hour, s) for t, s in w.suspends] == [(11, False), (13, True), (16, False)]
    assert w.released == ["job-a1"]
    pause = next(e for e in w.events if e.reason == cond.Reason.PAUSED)
    assert pause.message.startswith("Paused at 13:00 UTC after 2h")
    assert "400 gCO2/kWh until 16:00; resumes at 16:00 for 1h" in pause.message
    assert cond.Reason.RESUMED in w.reasons()
    assert w.status["progress"]["fraction"] == 0.66
    assert w.status["progress"]["energyJoules"] == 1.8e6
    assert w.status["phase"] in ("Starting", "Running")
    assert segment_states(w.status) == ["Done", "Running"]
    assert w.status["segments"][1]["resume"] is True

    # The Job completes: the paused segment's energy counts with the last one's.
    assert w.child is not None
    w.child = child_body(w.child, complete_at=at(7), started=at(6))
    acts = w.step(at(7), final_joules=1.8e6)
    assert any(isinstance(a, Done) for a in acts)
    assert w.status["phase"] == "Succeeded"
    assert w.status["energy"]["joules"] == 3.6e6
    assert segment_states(w.status) == ["Done", "Done"]
    assert w.status["emissions"]["intensity"] == CLEAN  # the segments' hours only, not the pause's


def test_a_trainer_that_shows_no_progress_is_not_paused_again() -> None:
    w = World(interruptible(), pause_report=report(1e5, None))
    w.run_until(at(14), at(0))
    assert cond.Reason.NO_PROGRESS in w.reasons()
    assert w.status["progress"]["noProgressPauses"] == 1
    # It starts again from zero: the whole 3h in one piece, never paused again.
    assert [s for _, s in w.suspends].count(True) == 1
    running = [s for s in w.status["segments"] if s["state"] != "Done"]
    assert len(running) == 1
    span = datetime.fromisoformat(running[0]["end"]) - datetime.fromisoformat(running[0]["start"])
    assert span >= timedelta(hours=3)


def test_a_resume_that_finds_the_gpus_taken_waits_and_says_the_deadline_is_at_risk() -> None:
    w = World(interruptible(max_delay="4h"), pause_report=report(1e6, 0.66), capacity=1)
    w.run_until(at(5), at(0))
    assert w.status["phase"] == "Paused"
    resume = datetime.fromisoformat(w.status["plannedStart"])
    # Someone else takes the region's only GPU from the resume on.
    w.ledger.apply("ml/other", Book(Reservation(NORTH, resume, resume + timedelta(hours=5), 1)))
    acts = w.step(resume)
    assert not any(isinstance(a, SetSuspended) for a in acts)
    taken = next(e for e in w.events if e.reason == cond.Reason.GPUS_TAKEN)
    assert "no room for 1 GPU(s) in north" in taken.message
    assert taken.warning
    risk = next(c for c in w.status["conditions"] if c["type"] == cond.DEADLINE_AT_RISK)
    assert risk["status"] == "True"
    assert w.status["phase"] == "Paused"


def test_pods_still_checkpointing_are_waited_for_then_read_and_let_go() -> None:
    w = World(interruptible(), pause_report=report(1e6, 0.5), checkpointed_at_once=False)
    w.run_until(at(3) + timedelta(minutes=1), at(0))
    assert w.status["phase"] == "Paused"
    assert w.released == []
    acts = w.step(at(3) + timedelta(minutes=2))
    assert [type(a) for a in acts] == [Requeue]
    w.held = [HeldPod("job-a1", True, report(1e6, 0.5))]
    w.step(at(3) + timedelta(minutes=3))
    assert w.released == ["job-a1"]
    assert w.status["progress"]["segmentReports"] == [{"pod": "job-a1", "joules": 1e6, "meter": "nvml"}]


def test_later_segments_are_booked_for_others_and_hidden_from_the_job_itself() -> None:
    ledger = CapacityLedger(REGIONS, timedelta(hours=24))
    first = Reservation(NORTH, at(1), at(3), 2)
    later = (Reservation(NORTH, at(6), at(8), 2), Reservation(NORTH, at(10), at(11), 2))
    ledger.apply(KEY, Book(first, None, later))
    assert sorted(ledger.view("ml/other", at(0)).bookings.values(), key=lambda r: r.start) == [first, *later]
    own = ledger.view(KEY, at(0)).bookings
    assert len(own) == 0
    assert list(own) == []
    ledger.apply(KEY, Book(first, None, later[:1]))  # re-planned: one later segment fewer
    assert len(ledger.view("ml/other", at(0)).bookings) == 2
    ledger.apply(KEY, Book(None))
    assert len(ledger.view("ml/other", at(0)).bookings) == 0
