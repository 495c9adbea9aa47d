"""The decision core driven through random histories against a simulated API.

A tiny simulated API holds the GreenTrainingJob and its child Job as dicts; a simulated executor
applies `reconcile`'s actions to them the way the real one does (ledger actions first, then API
calls in order; a create that finds the child answers 409 and stops the batch; status writes are
merge patches), and a stand-in for the Job controller starts an unsuspended child. Whatever the
interleaving of clock steps, forecast changes, template edits, pod progress and operator restarts
(between batches or in the middle of one), a job gets one child, its training starts at most once,
and it is released by its latest start (give or take one clock step).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from green_operator.accounting.settle import EnergyTotal, total_energy
from green_operator.api.phase import Phase
from green_operator.api.spec import TrainingJobSpec
from green_operator.controller.actions import (
    Action,
    Book,
    CreateChild,
    Done,
    MoveAside,
    PatchChild,
    PlanRecorded,
    RecreateChild,
    Requeue,
    RescueTried,
    SetSuspended,
    SettleMove,
    WriteStatus,
)
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.observed import AccountingInputs, JobMeta, Observed, child_state
from green_operator.controller.reconcile import needs, reconcile
from green_operator.times import rfc3339
from tests.operator.controller import builders as b
from tests.support.fuzz import claimed_energy, termination_messages
from tests.support.status_schema import status_errors

KEY = f"{b.NS}/job"
MAX_STEP = timedelta(minutes=45)
LOOP_LIMIT = 12
"""Decisions in a row without a pause (Requeue(0) chains): more means the core spins."""
FORECASTS: list[tuple[b.Intensity, b.Intensity]] = [
    (b.shaped(4, 8), b.flat(b.DIRTY)),  # north clean later
    (b.flat(b.DIRTY), b.shaped(2, 5)),  # south clean sooner
    (b.shaped(9, 12), b.shaped(1, 3)),  # both, at different times
    (b.flat(b.CLEAN), b.flat(b.DIRTY)),  # north clean now
    (b.flat(200.0), b.flat(200.0)),  # nothing to gain
]

_LEDGER = (Book, MoveAside, SettleMove, PlanRecorded, RescueTried)
_UNKNOWN: Any = object()


class CrashError(Exception):
    """The operator process dies in the middle of applying a batch."""


class UnprocessableError(Exception):
    """The API refuses a call (422): the real driver retries the whole decision with backoff."""


@dataclass
class World:
    body: dict[str, Any]
    now: datetime = b.T0
    forecast: int = 0
    child: dict[str, Any] | None = None
    """The child Job as the API holds it."""
    # the operator process
    ledger: CapacityLedger = field(default_factory=b.new_ledger)
    known: Any = _UNKNOWN
    """The operator's copy of the child (None: known absent; _UNKNOWN: not looked yet)."""
    next_wake: datetime | None = None
    finished: bool = False
    energy: EnergyTotal | None = None
    """What the pods' termination messages add up to (None: the builders' fixed figure)."""
    crash_after: int | None = None
    """A batch that makes more API calls than this dies after this many."""
    down: bool = False
    """The process died and has not come back yet: the API and the Job controller go on."""
    # what happened
    creates: int = 0
    recreates: int = 0
    conflicts: int = 0
    restarts: int = 0
    children_started: int = 0
    released_at: datetime | None = None
    failures: int = 0
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._boot()

    # -- the operator ---------------------------------------------------------------------------

    def _boot(self) -> None:
        """A fresh process: empty memory; the ledger's watches list the job; its task starts."""
        self.ledger = b.new_ledger()
        self.known = _UNKNOWN
        self.ledger.observe_job(KEY, self.body)
        self.ledger.first_seen(KEY, self.body.get("status") or {})

    def restart(self) -> None:
        self.down = False
        self.crash_after = None
        self._boot()
        self.run()

    def _observe(self) -> Observed:
        status = dict(self.body.get("status") or {})
        meta = JobMeta.of(self.body)
        spec = b.spec_of(self.body)
        if self.known is _UNKNOWN:  # as the driver: look only when the status says a child may exist
            looked = self.child if (status.get("jobName") or status.get("phase")) else None
            self.known = copy.deepcopy(looked)
        child = child_state(self.known, meta.uid) if self.known is not None else None
        s = b.SETTINGS
        n = needs(status, isinstance(spec, TrainingJobSpec), child, self.now, s.replan_interval, None)
        north, south = FORECASTS[self.forecast]
        return Observed(
            meta=meta,
            spec=spec,
            status=status,
            child=child,
            now=self.now,
            settings=s,
            ledger=self.ledger.view(KEY, self.now),
            forecasts=b.forecasts(self.now, north, south) if n.forecasts else {},
            pods=self.ledger.pods_of(meta.namespace, meta.name),
            accounting=self._accounting(status, child) if n.accounting else None,
        )

    def _accounting(self, status: dict[str, Any], child: Any) -> AccountingInputs:
        acc = b.accounting(status, child, self.now)
        return acc if self.energy is None else dataclasses.replace(acc, energy=self.energy)

    def _execute(self, actions: list[Action]) -> float | None:
        # As the executor: ledger actions first, but a first decision leaves the burst queue only
        # once its API calls are done (or failed).
        for a in actions:
            if isinstance(a, _LEDGER) and not isinstance(a, PlanRecorded):
                self.ledger.apply(KEY, a)
        try:
            return self._api(actions)
        finally:
            for a in actions:
                if isinstance(a, PlanRecorded):
                    self.ledger.apply(KEY, a)

    def _api(self, actions: list[Action]) -> float | None:
        calls = 0
        requeue: float | None = None
        for a in actions:
            if isinstance(a, (CreateChild, RecreateChild, PatchChild, SetSuspended, WriteStatus)):
                if self.crash_after is not None and calls >= self.crash_after:
                    raise CrashError
                calls += 1
            match a:
                case CreateChild(manifest):
                    if not self._create(manifest):
                        return 0.0
                case RecreateChild(manifest):
                    assert self.child is not None, "recreate of a missing child"
                    started = (self.child.get("status") or {}).get("startTime")
                    assert not started, "a started child (its training ran) was deleted and re-created"
                    self.child = None
                    self.recreates += 1
                    if not self._create(manifest):
                        return 0.0
                case PatchChild(patch):
                    self._patch_child(patch)
                case SetSuspended(suspended):
                    self._patch_child({"spec": {"suspend": suspended}})
                case WriteStatus(patch):
                    self.body["status"] = b.merge(self.body.get("status") or {}, patch)
                    # What the apiserver would refuse is a status the operator cannot write.
                    errors = status_errors(self.body["status"])
                    assert not errors, (errors, self.log)
                    self.ledger.observe_status(KEY, self.body["status"])
                case Requeue(after):
                    requeue = after
                case Done():
                    self.finished = True
                case _:
                    pass  # events and metrics
        self.ledger.observe_job(KEY, self.body)  # the ledger's watch sees the write
        return requeue

    def _create(self, manifest: Any) -> bool:
        if self.child is not None:  # 409: stop the batch; the next decision sees the child
            self.conflicts += 1
            self.known = copy.deepcopy(self.child)
            return False
        self.creates += 1
        self.child = b.child_body(manifest)
        self.child["status"] = {}
        self.known = copy.deepcopy(self.child)
        return True

    def _patch_child(self, patch: Any) -> None:
        assert self.child is not None, "patch of a missing child"
        spec = self.child["spec"]
        frozen = not spec.get("suspend") or (self.child.get("status") or {}).get("startTime")
        if "template" in (patch.get("spec") or {}) and frozen:
            raise UnprocessableError("a started Job's pod template is immutable")
        self.child = b.merge(self.child, patch)
        self.known = copy.deepcopy(self.child)

    def run(self) -> None:
        """The job's task: decide and apply until it pauses (or finishes)."""
        for _ in range(LOOP_LIMIT):
            if self.finished or self.down:
                return
            try:
                after = self._execute(reconcile(self._observe()))
            except CrashError:
                self.crash_after = None
                self.restarts += 1
                self.down = True
                self.job_controller()
                return
            except UnprocessableError:
                self.failures += 1  # check() fails on it: the core asked for a call the API refuses
                self.next_wake = self.now + timedelta(seconds=5)  # backoff
                self.job_controller()
                return
            self.job_controller()
            if after is None or after > 0:
                self.next_wake = self.now + timedelta(seconds=after or 3600)
                return
        raise AssertionError(f"reconcile spun {LOOP_LIMIT} times without pausing: {self.log[-5:]}")

    # -- the rest of the cluster -----------------------------------------------------------------

    def job_controller(self) -> None:
        """Starts an unsuspended child at once (its pods then take their time)."""
        c = self.child
        if c is not None and not c["spec"].get("suspend") and not c["status"].get("startTime"):
            c["status"] = {**c["status"], "startTime": rfc3339(self.now), "active": 1}
            self.children_started += 1
            if self.released_at is None:
                self.released_at = self.now
            self.known = _UNKNOWN if self.known is _UNKNOWN else copy.deepcopy(c)

    def child_event(self, what: str) -> None:
        c = self.child
        if c is None or not c["status"].get("startTime"):
            return
        if what == "ready":
            c["status"] = {**c["status"], "ready": 1}
        elif what == "complete" and c["status"].get("ready"):
            done = rfc3339(self.now)
            conds = [{"type": "Complete", "status": "True", "lastTransitionTime": done}]
            c["status"] = {**c["status"], "ready": 0, "active": 0, "succeeded": 1, "completionTime": done}
            c["status"]["conditions"] = conds
        else:
            return
        if self.known is not _UNKNOWN:
            self.known = copy.deepcopy(c)  # the Job watch
        self.run()  # the Job watch wakes the job (when the operator is up)

    def edit_template(self) -> None:
        status = self.body.get("status") or {}
        if status.get("startTime"):
            return  # the CRD refuses template edits once the job started
        spec = self.body["spec"]
        image = spec["template"]["spec"]["containers"][0]["image"]
        spec["template"]["spec"]["containers"][0]["image"] = image + "+"
        self.body["metadata"]["generation"] += 1
        self.run()  # a spec edit wakes the job (when the operator is up)

    def tick(self, minutes: int) -> None:
        if self.down:  # it comes back before the clock moves on
            self.restart()
        self.now += timedelta(minutes=minutes)
        self.job_controller()
        if self.next_wake is not None and self.now >= self.next_wake:
            self.run()


Event = tuple[str, int]
events = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(1, int(MAX_STEP.total_seconds() // 60))),
        st.tuples(st.just("forecast"), st.integers(0, len(FORECASTS) - 1)),
        st.tuples(st.just("edit"), st.just(0)),
        st.tuples(st.just("ready"), st.just(0)),
        st.tuples(st.just("complete"), st.just(0)),
        st.tuples(st.just("restart"), st.just(0)),
        st.tuples(st.just("crash"), st.integers(0, 3)),
    ),
    max_size=60,
)


def check(w: World, spec: TrainingJobSpec) -> None:
    """What must hold whenever the operator is up and has caught up."""
    status = w.body.get("status") or {}
    phase = Phase.of(status.get("phase"))
    c = w.child
    # One child: every create but the first replaced a child that never started (a template edit).
    assert w.children_started <= 1, w.log
    assert w.creates == 1 + w.recreates, w.log
    assert w.recreates <= w.log.count("edit 0"), w.log
    assert w.conflicts <= w.restarts, w.log  # a 409 only when a process died with the child unrecorded
    assert w.failures == 0, w.log
    # The status says what the child is.
    suspended = None if c is None else bool(c["spec"]["suspend"])
    if phase is Phase.DEFERRED:
        assert suspended is True, w.log
    if phase is not None and phase.released:
        assert suspended is False, w.log
    if c is not None and (c["status"].get("conditions") or []):
        assert w.finished, w.log
        assert phase is Phase.SUCCEEDED, w.log
    # Released by its latest start: the job's wake-up is never later than that, and the clock
    # moves at most MAX_STEP at a time.
    if w.now >= spec.latest_start:
        assert phase in (Phase.STARTING, Phase.RUNNING, Phase.SUCCEEDED), w.log
        assert w.released_at is not None, w.log
        assert w.released_at <= spec.latest_start + MAX_STEP, w.log


# A process dies between unsuspending the child and writing Starting; the template is edited before
# it comes back: the child runs, so it is released, not re-planned onto a template it cannot take.
CRASH_AT_RELEASE_THEN_EDIT: list[Event] = [("tick", 15)] * 15 + [("crash", 1), ("tick", 15), ("edit", 0), ("tick", 5)]


@settings(max_examples=100, deadline=None)
@example(history=CRASH_AT_RELEASE_THEN_EDIT, max_delay="12h", first=0, crash_first=None)
@given(
    history=events,
    max_delay=st.sampled_from(["0s", "30m", "3h", "12h"]),
    first=st.integers(0, len(FORECASTS) - 1),
    crash_first=st.none() | st.integers(0, 2),
)
def test_one_child_released_by_its_latest_start(
    history: list[Event], max_delay: str, first: int, crash_first: int | None
) -> None:
    w = World(b.body(max_delay=max_delay, duration="1h"), forecast=first)
    spec = b.parsed(w.body)
    w.crash_after = crash_first  # the first decision's batch may die half-way too
    w.run()
    if not w.down:
        check(w, spec)
    for kind, arg in history:
        w.log.append(f"{kind} {arg}")
        match kind:
            case "tick":
                w.tick(arg)
            case "forecast":
                w.forecast = arg
            case "edit":
                w.edit_template()
            case "ready" | "complete":
                w.child_event(kind)
            case "restart":
                w.restarts += 1
                w.restart()
            case "crash":
                w.crash_after = None if w.down else arg
        phase = (w.body.get("status") or {}).get("phase")
        w.log.append(f"  -> {phase} at {w.now:%H:%M}{' (down)' if w.down else ''}")
        if not w.down:
            check(w, spec)
    if w.down:
        w.restart()
        check(w, spec)
    for what, happened in (
        ("released", w.released_at is not None),
        ("succeeded", w.finished),
        ("child rebuilt", w.recreates > 0),
        ("409 after a crash", w.conflicts > 0),
    ):
        if happened:
            event(what)


timestamps = st.sampled_from(
    ["2026-11-25T10:00:00Z", "2026-11-25T11:30:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "x"]
)


@st.composite
def pods(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Finished pods whose termination messages (current and previous attempt) came from anywhere."""

    def attempt() -> dict[str, Any]:
        term: dict[str, Any] = {"exitCode": 0, "message": draw(termination_messages | claimed_energy)}
        if draw(st.booleans()):
            term.update(startedAt=draw(timestamps), finishedAt=draw(timestamps))
        return term

    out = []
    for i in range(draw(st.integers(0, 3))):
        cs: dict[str, Any] = {"name": "train", "state": {"terminated": attempt()}}
        if draw(st.booleans()):
            cs["lastState"] = {"terminated": attempt()}
        out.append({"metadata": {"name": f"job-{i}"}, "status": {"containerStatuses": [cs]}})
    return out


@given(
    history=events,
    reported=pods(),
    gpus=st.integers(0, 8),
    watts=st.floats(min_value=0, max_value=2000),
)
def test_every_status_written_validates_against_the_crd_schema(
    history: list[Event], reported: list[dict[str, Any]], gpus: int, watts: float
) -> None:
    """Whatever the histories and whatever the pods report, every status patch, merged, is one the
    apiserver takes (World checks each WriteStatus), and the job still ends Succeeded."""
    w = World(b.body(max_delay="30m", duration="1h"), energy=total_energy(reported, gpus, watts))
    w.run()
    for kind, arg in [*history, ("tick", 45), ("tick", 45), ("ready", 0), ("complete", 0)]:
        w.log.append(f"{kind} {arg}")
        match kind:
            case "tick":
                w.tick(arg)
            case "forecast":
                w.forecast = arg
            case "edit":
                w.edit_template()
            case "ready" | "complete":
                w.child_event(kind)
            case "restart" | "crash":  # a crash in the middle of a batch is the test above's
                w.restarts += 1
                w.restart()
    if w.down:
        w.restart()
    assert w.finished, w.log
    energy = w.body["status"]["energy"]
    assert w.energy is not None
    assert energy["refusedReports"] == len(w.energy.refusals)
    event(f"{energy['refusedReports']} report(s) refused")
