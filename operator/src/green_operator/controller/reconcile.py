"""The decision core: one GreenTrainingJob's observed state in, actions out. Pure.

`needs` says what a front-end must gather before calling `reconcile` (forecasts, the accounting
inputs, live energy), so the front-end does exactly the I/O a decision needs. `reconcile` takes at
most one transition per call and ends with `Requeue` or `Done`; front-ends call it again after
applying the actions (at once for `Requeue(0)`). Everything it does is idempotent against the
API's state: a process that dies between two actions is picked up from the status and the child.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from green_operator.api.conditions import Reason
from green_operator.api.manifests import build_rendezvous_service, job_name, placement_patch
from green_operator.api.phase import Phase
from green_operator.api.spec import SpecProblem, TrainingJobSpec, parse_spec
from green_operator.api.status import decision_from_status
from green_operator.carbon.provider import ForecastResult
from green_operator.planner import Decision, JobRequest, Reservation, plan, plan_with_preemption
from green_operator.planner.columns import ReservationColumns
from green_operator.times import parse_rfc3339

from . import transitions as tr
from .actions import (
    Action,
    Book,
    CreateChild,
    CreateService,
    Done,
    Emit,
    MoveAside,
    PatchChild,
    PlanRecorded,
    RecordDecision,
    RecordRelease,
    RecreateChild,
    Requeue,
    RescueTried,
    SetSuspended,
    SettleMove,
    WriteStatus,
)
from .child import child_digest, child_manifest
from .observed import ChildState, MovableJob, Observed
from .released import follow
from .replans import next_replan, replan_after
from .segmented import reconcile_segmented

START_TOLERANCE = timedelta(seconds=1)
"""A planned start this close to now counts as now."""
REFUSED_POLL = 3600.0
"""A refused spec waits for an edit (every edit wakes the job); this is only a safety net."""
CONFLICT_POLL = 300.0
CHILD_GONE_POLL = 1.0


@dataclass(frozen=True)
class Needs:
    """What `reconcile` will read for this job, beyond its own object and the ledger."""

    forecasts: bool = False
    fresh_forecasts: bool = False
    """A periodic re-plan is due: ask the carbon service, not the per-slot cache."""
    accounting: bool = False
    live_energy: bool = False


def needs(
    status: Mapping[str, Any],
    spec_ok: bool,
    child: ChildState | None,
    now: datetime,
    replan_interval: timedelta,
    live_interval: timedelta | None,
    *,
    interruptible: bool = False,
) -> Needs:
    """`interruptible`: the job may pause (spec.interruption), so it plans while it runs too."""
    phase = Phase.of(status.get("phase"))
    if phase is not None and phase.terminal:
        return Needs()
    if phase is not None and (phase.released or (interruptible and phase is Phase.PAUSED)):
        if child is None or child.finished:
            return Needs(accounting=True)
        if interruptible and spec_ok:
            return Needs(forecasts=True, fresh_forecasts=now >= next_replan(status, replan_interval))
        energy = status.get("energy") or {}
        last = energy.get("updatedAt") if energy.get("live") else None
        due = last is None or now - parse_rfc3339(str(last)) >= (live_interval or timedelta(0))
        return Needs(live_energy=live_interval is not None and due)
    if not spec_ok:
        return Needs()
    return Needs(forecasts=True, fresh_forecasts=has_plan(status) and now >= next_replan(status, replan_interval))


def observe_spec(
    body: Mapping[str, Any], status: Mapping[str, Any], region_names: Sequence[str]
) -> TrainingJobSpec | list[SpecProblem]:
    """The spec as decisions read it. A released job runs where it was placed: a region since
    dropped from the configuration does not keep it from being followed to its end."""
    phase = Phase.of(status.get("phase"))
    return parse_spec(body, region_names, check_regions=not (phase is not None and phase.released))


def has_plan(status: Mapping[str, Any]) -> bool:
    return bool(status.get("jobName") and status.get("plannedStart"))


def reconcile(o: Observed) -> list[Action]:
    phase = Phase.of(o.status.get("phase"))
    if phase is not None and phase.terminal:
        return [Book(None), Done()]
    if not isinstance(o.spec, TrainingJobSpec):
        return _refuse(o)
    spec = o.spec
    released = phase is not None and phase.released
    if o.child is not None and not o.child.owned:
        return _conflict(o, spec, _CHILD_CONFLICT.format(kind="Job", name=job_name(spec.name), ns=spec.namespace))
    if spec.parallelism > 1 and o.service is not None and not o.service.owned and not released:
        return _conflict(o, spec, _CHILD_CONFLICT.format(kind="Service", name=job_name(spec.name), ns=spec.namespace))
    if o.child is not None and o.child.deleting:
        return [Requeue(CHILD_GONE_POLL)]  # being replaced (or deleted by someone): look again shortly
    if spec.interruption.interruptible:
        acts = reconcile_segmented(o, spec)
    elif released:
        acts = follow(o, spec)
    elif not has_plan(o.status):
        acts = _first_plan(o, spec)
    else:
        acts = _while_deferred(o, spec)
    return _with_service(o, spec, acts)


def _with_service(o: Observed, spec: TrainingJobSpec, acts: list[Action]) -> list[Action]:
    """A multi-pod job's headless Service exists whenever its pods may: created first (before the
    child), again if deleted; not once the job is done."""
    if spec.parallelism <= 1 or o.service is not None or any(isinstance(a, Done) for a in acts):
        return acts
    service = build_rendezvous_service(
        gtj_name=spec.name, gtj_uid=spec.uid, namespace=spec.namespace, labels=spec.labels
    )
    return [CreateService(service), *acts]


# -- refusals ------------------------------------------------------------------------------------


def _refuse(o: Observed) -> list[Action]:
    assert not isinstance(o.spec, TrainingJobSpec)
    acts: list[Action] = [Book(None), PlanRecorded()]  # nothing to plan until an edit: not part of a burst
    patch = tr.refused(o.status, o.meta, o.spec, o.now)
    if patch is not None:
        patch["observedGeneration"] = o.meta.generation
        message = tr.spec_message(o.spec)
        acts += [WriteStatus(patch), Emit(Reason.INVALID_SPEC, f"Cannot plan this job: {message}", warning=True)]
    return [*acts, Requeue(REFUSED_POLL)]


_CHILD_CONFLICT = (
    "a {kind} named {name} already exists in {ns} and is not owned by this GreenTrainingJob; "
    "rename or delete one of them"
)


def _conflict(o: Observed, spec: TrainingJobSpec, message: str) -> list[Action]:
    acts: list[Action] = [Book(None), PlanRecorded()]
    current = o.status.get("conditions") or []
    if not any(c.get("reason") == Reason.CHILD_CONFLICT for c in current):
        acts += [
            WriteStatus(tr.child_conflict(o.status, o.meta, message, o.now)),
            Emit(Reason.CHILD_CONFLICT, message, True),
        ]
    return [*acts, Requeue(CONFLICT_POLL)]


# -- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    decision: Decision
    actions: list[Action]
    """Ledger actions: this job's booking and any jobs moved aside for it."""


def _decide(o: Observed, spec: TrainingJobSpec, previous: Decision | None, *, preempt: bool) -> _Plan:
    """Plan this job against every other booking. With `preempt`, deferred jobs in its way may be
    moved aside (each still meeting its own deadline) when it would otherwise be late."""
    settings = o.settings.planner
    views = [o.forecasts[r].forecast for r in sorted(o.forecasts)]
    # Jobs due within the current slot are about to be released: not worth moving.
    movable = {k: m for k, m in o.ledger.movable.items() if m.decision.start > o.now + settings.slot} if preempt else {}
    request = spec.request(o.now, previous)
    acts: list[Action] = []
    if movable:
        others = [
            r if r.end > o.now else Reservation(r.region, r.start, o.now + settings.slot, r.gpus)
            for k, r in o.ledger.bookings.items()
            if k not in movable
        ]
        requests = [_with_previous(m) for m in movable.values()]
        outcome = plan_with_preemption([request], requests, views, others, o.now, settings, o.ledger.memo)
        decision = outcome.decisions[0]
        acts += [MoveAside(d, movable[d.key].decision, movable[d.key].request.gpus) for d in outcome.moved]
    else:
        # Every other booking as columns (a burst's first decisions read a thousand of them).
        columns = o.ledger.columns
        if columns is None:
            columns = ReservationColumns.of(o.ledger.bookings.values())
        fixed = columns.held_until(o.now, o.now + settings.slot)
        decision = plan([request], [v for v in views if v.region in spec.regions], fixed, o.now, settings)[0]
    waits = decision.start > o.now + settings.slot
    booking = Reservation(decision.region, decision.start, decision.end, spec.gpus)
    # Others see this job at its new plan at once, movable while it waits.
    acts.insert(0, Book(booking, MovableJob(request, decision) if waits else None))
    return _Plan(decision, acts)


def _with_previous(m: MovableJob) -> JobRequest:
    return replace(m.request, previous=m.decision)


def _results(o: Observed, spec: TrainingJobSpec) -> list[ForecastResult]:
    return [o.forecasts[r].result for r in spec.regions if r in o.forecasts]


def _source(o: Observed, region: str) -> ForecastResult | None:
    data = o.forecasts.get(region)
    return data.result if data else None


def _manifest(o: Observed, spec: TrainingJobSpec, decision: Decision, *, suspend: bool) -> dict[str, Any]:
    return child_manifest(o, spec, decision.region, decision.power_limit_watts, decision.forecast_intensity, suspend)


def _template_changed(child: ChildState, spec: TrainingJobSpec, spec_changed: bool) -> bool:
    """The child was built from another pod template and can still be rebuilt (never started).
    A child from an older operator carries no digest: rebuilt after any spec edit."""
    if child.started:
        return False
    if child.template_hash is None:
        return spec_changed
    return child.template_hash != child_digest(spec)


def _place_waiting_child(o: Observed, spec: TrainingJobSpec, decision: Decision, spec_changed: bool) -> list[Action]:
    """Point the suspended child at a plan: create it if it is gone, rebuild it from a new template,
    else patch its placement (a suspended, never-started Job's scheduling directives are mutable)."""
    child = o.child
    if child is None:
        return [CreateChild(_manifest(o, spec, decision, suspend=True))]
    if _template_changed(child, spec, spec_changed):
        return [RecreateChild(_manifest(o, spec, decision, suspend=True))]
    region = o.settings.regions[decision.region]
    patch = placement_patch(
        node_selector=region.node_selector,
        previous_node_selector=child.node_selector,
        tolerations=region.tolerations,
        user_template=spec.template,
        region=decision.region,
        power_limit_watts=decision.power_limit_watts,
        intensity=decision.forecast_intensity,
    )
    return [PatchChild(patch)]


def _first_plan(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    burst = o.ledger.in_burst
    # In a burst, plan at once without searching for room; late jobs search once it is over.
    p = _decide(o, spec, decision_from_status(spec.key, o.status), preempt=not burst)
    d = p.decision
    start_now = d.start <= o.now + START_TOLERANCE
    child = o.child
    # In a burst, a deferred job's suspended child waits until no first decision does: it is a
    # placeholder until the start, and its create (with the Job controller's write and Event)
    # costs the apiserver more than the decision itself.
    child_later = burst and child is None and not start_now
    acts: list[Action] = [*p.actions, PlanRecorded(late=burst and d.deadline_at_risk, child_later=child_later)]
    if child is None and not start_now:
        # A deferred job's decision is its status: written before the suspended child is created,
        # so it shows one API round trip sooner. Should the create fail, the next step (or a
        # restarted operator) finds the plan without a child and creates it.
        acts += _write_plan(o, spec, d, released=False, replanned=False)
        if not child_later:
            acts.append(CreateChild(_manifest(o, spec, d, suspend=True)))
        return [*acts, Requeue(_sleep_while_deferred(o, spec, d.start, replan_after(o, spec)))]
    if child is None:
        acts.append(CreateChild(_manifest(o, spec, d, suspend=False)))
        released = True
    elif not child.suspended:
        released = True  # a previous process created and released it, then died before writing status
    elif _template_changed(child, spec, spec_changed=True):
        acts.append(RecreateChild(_manifest(o, spec, d, suspend=not start_now)))
        released = start_now
    elif start_now:
        acts += [*_place_waiting_child(o, spec, d, False), SetSuspended(False)]
        released = True
    else:
        acts += _place_waiting_child(o, spec, d, False)
        released = False
    acts += _write_plan(o, spec, d, released=released, replanned=False)
    return [
        *acts,
        Requeue(0.0 if released else _sleep_while_deferred(o, spec, d.start, replan_after(o, spec))),
    ]


def _write_plan(
    o: Observed, spec: TrainingJobSpec, d: Decision, *, released: bool, replanned: bool, note: str = ""
) -> list[Action]:
    patch = tr.planned(
        o.status,
        spec,
        d,
        _results(o, spec),
        _source(o, d.region),
        released=released,
        replanned=replanned,
        now=o.now,
        note=note,
    )
    reason = Reason.REPLANNED if replanned else (Reason.STARTED_NOW if released else Reason.WAITING_FOR_WINDOW)
    outcome = "replanned" if replanned else ("started" if released else "deferred")
    message = patch["plan"]["reason"]
    acts: list[Action] = [
        WriteStatus(patch),
        Emit(reason, message, warning=d.deadline_at_risk),
        RecordDecision(outcome, d.deadline_at_risk, d.region, d.expected_grams, d.baseline_grams, first=not replanned),
    ]
    if released:
        acts.append(RecordRelease(max((o.now - spec.created).total_seconds(), 0.0)))
    return acts


def _sleep_while_deferred(o: Observed, spec: TrainingJobSpec, planned: datetime, replan_at: datetime) -> float:
    """Until the planned start, the latest start or the next periodic re-plan, whichever is first."""
    wake = min(planned, spec.latest_start, replan_at)
    return max((wake - o.now).total_seconds(), 0.0)


# -- waiting -------------------------------------------------------------------------------------


def _while_deferred(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    current = decision_from_status(spec.key, o.status)
    spec_changed = o.status.get("observedGeneration") != spec.generation
    if current is None:  # a status this version cannot read: plan afresh
        return _first_plan(o, spec)
    if o.child is not None and not o.child.suspended:
        # Already let go (by a process that died before writing status, or by hand): its template
        # can no longer be patched or re-planned; record the release.
        settle: list[Action] = [SettleMove()] if o.ledger.pending_move is not None else []
        return [*settle, *_release(o, spec, current)]
    pending = o.ledger.pending_move
    if pending is not None:
        return _apply_move(o, spec, current, spec_changed)
    planned = current.start
    latest = spec.latest_start
    due = o.now >= next_replan(o.status, o.settings.replan_interval) and o.now < planned and o.now < latest
    # A late job (left so by a burst, or still at risk at a re-plan) searches for room by moving
    # deferred jobs aside, as on arrival; never while a first decision waits.
    search = not spec_changed and (o.ledger.rescue or (due and o.ledger.at_risk)) and o.ledger.may_rescue
    if spec_changed or due or search:
        return _replan(o, spec, current, spec_changed=spec_changed, search=search, record=due)
    if o.now + START_TOLERANCE >= planned or o.now >= latest:
        return _release(o, spec, current)
    waiting: list[Action] = []
    if o.child is None and not o.ledger.child_waits:
        # Deferred in a burst (its turn has come), or someone deleted the suspended child: create
        # it on the current plan.
        waiting.append(CreateChild(_manifest(o, spec, current, suspend=True)))
    return [
        *waiting,
        Book(_booking(spec, current), MovableJob(spec.request(o.now, current), current)),
        Requeue(_sleep_while_deferred(o, spec, planned, next_replan(o.status, o.settings.replan_interval))),
    ]


def _booking(spec: TrainingJobSpec, d: Decision) -> Reservation:
    return Reservation(d.region, d.start, d.end, spec.gpus)


def _same_place(a: Decision, b: Decision) -> bool:
    return (a.region, a.start, a.power_limit_watts) == (b.region, b.start, b.power_limit_watts)


def _apply_move(o: Observed, spec: TrainingJobSpec, current: Decision, spec_changed: bool) -> list[Action]:
    """Another job's arrival moved this one aside. Apply it unless this job's plan changed
    meanwhile (its own re-plan or a spec edit), which supersedes the move."""
    pending = o.ledger.pending_move
    assert pending is not None
    if spec_changed or not _same_place(current, pending.previous):
        movable = MovableJob(spec.request(o.now, current), current)
        return [SettleMove(), Book(_booking(spec, current), movable), Requeue(0.0)]
    d = pending.decision
    return [
        SettleMove(),
        *_place_waiting_child(o, spec, d, False),
        *_write_plan(o, spec, d, released=False, replanned=True, note=f"moved aside for {pending.for_job}"),
        Requeue(0.0),
    ]


def _replan(
    o: Observed, spec: TrainingJobSpec, current: Decision, *, spec_changed: bool, search: bool, record: bool
) -> list[Action]:
    """Plan again; write the new plan when it moved, else (`record`) that it was re-checked."""
    p = _decide(o, spec, None if spec_changed else current, preempt=search)
    d = p.decision
    acts: list[Action] = [*p.actions]
    if search:
        acts.append(RescueTried())
    if spec_changed or not _same_place(d, current):
        acts += _place_waiting_child(o, spec, d, spec_changed)
        acts += _write_plan(o, spec, d, released=False, replanned=True)
    elif record:
        acts.append(WriteStatus(tr.rechecked(o.status, spec, _results(o, spec), o.now)))
    return [*acts, Requeue(0.0)]


def _release(o: Observed, spec: TrainingJobSpec, current: Decision) -> list[Action]:
    now = o.now
    latest = spec.latest_start
    # Its GPUs are taken from now, whatever the plan said (a late job starts at its latest start,
    # before its planned one), and it can no longer be moved aside.
    acts: list[Action] = [Book(Reservation(current.region, now, now + current.expected_duration, spec.gpus))]
    child = o.child
    if child is None:
        acts.append(CreateChild(_manifest(o, spec, current, suspend=False)))
    elif _template_changed(child, spec, spec_changed=False):
        acts.append(RecreateChild(_manifest(o, spec, current, suspend=False)))
    elif child.suspended:
        acts.append(SetSuspended(False))
    if tr.window_reached(current.start, latest, now, START_TOLERANCE):
        reason, what = Reason.WINDOW_REACHED, "its low-carbon window"
    else:
        reason, what = Reason.LATEST_START_REACHED, "its latest start (the deadline holds)"
    message = f"Started in {current.region} at {now:%H:%M} UTC: {what}"
    patch = tr.released(o.status, spec, reason, message, latest, now)
    return [
        *acts,
        WriteStatus(patch),
        Emit(reason, message),
        RecordRelease(max((now - spec.created).total_seconds(), 0.0)),
        Requeue(0.0),
    ]
