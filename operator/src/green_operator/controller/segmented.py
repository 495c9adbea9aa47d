"""Interruptible jobs (spec.interruption.policy Checkpointed): planned as segments, paused by
suspending the child Job, resumed by unsuspending it. Pure; `reconcile` dispatches here.

Phases: Deferred (never ran) -> Starting/Running (a segment runs) -> Paused (the Job is suspended;
its pods' reports are read, then the next segment waits) -> Starting/Running -> ... -> Succeeded or
Failed. Status lists the segments (Done, Running, Planned) and the progress the pods reported.

- A pause reads every paused pod's report (the report finalizer holds the pods until then), sums
  its energy and takes the least progress any pod reported. A job whose pods report no progress
  across a pause (a trainer that does not checkpoint starts again from zero) is never paused again:
  it is planned in one piece, and an Event says why.
- Every plan, re-plan and resume goes through `plan_segments` against the ledger's bookings, so
  a resume that finds its GPUs taken waits for room (GPUsTaken), and DeadlineAtRisk turns True
  when the rest no longer fits before the deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from green_operator.accounting.reports import max_joules
from green_operator.accounting.segments import settle_segments, spans
from green_operator.accounting.settle import parse_report
from green_operator.api import conditions as cond
from green_operator.api.conditions import Reason
from green_operator.api.manifests import job_name
from green_operator.api.phase import Phase
from green_operator.api.spec import TrainingJobSpec
from green_operator.api.status import carbon_condition, plan_fields
from green_operator.planner import Decision, Reservation, SegmentJob, SegmentPlan, plan_segments
from green_operator.times import format_duration, parse_rfc3339, rfc3339

from . import transitions as tr
from .actions import (
    Action,
    Book,
    CreateChild,
    Done,
    Emit,
    PlanRecorded,
    RecordDecision,
    RecordFinish,
    RecordRelease,
    ReleasePod,
    Requeue,
    SetSuspended,
    WriteStatus,
)
from .child import child_manifest
from .observed import Observed
from .released import follow
from .replans import next_replan, replan_after

TOLERANCE = timedelta(seconds=1)
"""A planned start or end this close to now counts as now."""
REPORT_POLL = 2.0
"""While paused pods checkpoint (the pod watch wakes the job sooner)."""
PROGRESS_EPS = 1e-9

DONE, RUNNING, PLANNED = "Done", "Running", "Planned"


def reconcile_segmented(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    phase = Phase.of(o.status.get("phase"))
    if not o.status.get("segments"):
        return _first_plan(o, spec)
    if phase is Phase.PAUSED:
        return _while_paused(o, spec)
    if phase is not None and phase.released:
        if o.child is None or o.child.finished:
            return _finish(o, spec)
        return _while_running(o, spec)
    return _while_deferred(o, spec)


# -- reading the status --------------------------------------------------------------------------


def _segments(status: Mapping[str, Any], state: str | None = None) -> list[dict[str, Any]]:
    return [dict(s) for s in status.get("segments") or [] if state is None or s.get("state") == state]


def _progress(status: Mapping[str, Any]) -> dict[str, Any]:
    return dict(status.get("progress") or {})


def _fraction(status: Mapping[str, Any]) -> float:
    return min(max(float(_progress(status).get("fraction") or 0.0), 0.0), 1.0)


def _no_progress(status: Mapping[str, Any]) -> bool:
    return int(_progress(status).get("noProgressPauses") or 0) > 0


def _next_replan(o: Observed) -> datetime:
    return next_replan(o.status, o.settings.replan_interval)


# -- planning ------------------------------------------------------------------------------------


def _plan(o: Observed, spec: TrainingJobSpec, running_since: datetime | None = None) -> SegmentPlan:
    ran = bool(_segments(o.status, DONE)) or running_since is not None
    region = o.status.get("region")
    # A checkpoint volume is zonal: once it has run, a job resumes where it ran.
    regions = (str(region),) if ran and region else spec.regions
    it = spec.interruption
    remaining = spec.estimated_duration * (1.0 - _fraction(o.status))
    if running_since is not None:
        # Progress is reported at pauses: the running segment's work so far is its time past the overhead.
        current = _segments(o.status, RUNNING)
        overhead = it.resume_overhead if current and current[0].get("resume") else timedelta(0)
        remaining = max(remaining - max(o.now - running_since - overhead, timedelta(0)), o.settings.planner.slot)
    # No progress across a pause: never paused again, so one segment for all the rest.
    min_segment = it.min_segment
    if _no_progress(o.status):
        min_segment = max(min_segment, remaining + it.resume_overhead + o.settings.planner.slot * 2)
    job = SegmentJob(
        key=spec.key,
        gpus=spec.gpus,
        remaining=remaining,
        deadline=spec.deadline,
        min_segment=min_segment,
        resume_overhead=it.resume_overhead,
        regions=regions,
        resume_energy_joules=it.resume_energy_joules,
        fresh=not ran,
        running_since=running_since,
        power=spec.power,
    )
    slot = o.settings.planner.slot
    views = [o.forecasts[r].forecast for r in sorted(o.forecasts) if r in regions]
    others = [
        r if r.end > o.now else Reservation(r.region, r.start, o.now + slot, r.gpus) for r in o.ledger.bookings.values()
    ]
    return plan_segments(job, views, others, o.now, o.settings.planner)


def _decision(o: Observed, spec: TrainingJobSpec, p: SegmentPlan) -> Decision:
    """The plan as the status' `plan` block records it: the next (or current) segment, and the
    carbon-blind baseline of the job's first plan (running it at once, in one piece)."""
    before = o.status.get("plan") or {}
    first = p.segments[0]
    return Decision(
        key=spec.key,
        region=p.region,
        start=first.start,
        power_limit_watts=p.power_limit_watts,
        expected_duration=first.length,
        expected_grams=p.expected_grams,
        forecast_intensity=p.forecast_intensity,
        baseline_region=str(before.get("baselineRegion") or spec.regions[0]),
        baseline_start=parse_rfc3339(before["baselineStart"]) if before.get("baselineStart") else o.now,
        baseline_grams=float(before.get("baselineGrams") or p.baseline_grams),
        baseline_intensity=float(before.get("baselineIntensity") or p.baseline_intensity),
        deadline_at_risk=p.deadline_at_risk,
        reason=p.reason,
    )


def _book(o: Observed, spec: TrainingJobSpec, p: SegmentPlan) -> Book:
    held = p.reservations(spec.gpus, o.now)
    if not held:  # running past its plan: it holds its GPUs until the next look
        held = [Reservation(p.region, o.now, o.now + o.settings.planner.slot, spec.gpus)]
    return Book(held[0], None, tuple(held[1:]))


def _segment_rows(o: Observed, p: SegmentPlan, running: bool) -> list[dict[str, Any]]:
    rows = _segments(o.status, DONE)
    for i, s in enumerate(p.segments):
        state = RUNNING if running and i == 0 else PLANNED
        rows.append({"start": rfc3339(s.start), "end": rfc3339(s.end), "state": state, "resume": s.resume})
    return rows


def _plan_patch(
    o: Observed, spec: TrainingJobSpec, p: SegmentPlan, *, phase: Phase, running: bool, replanned: bool
) -> dict[str, Any]:
    d = _decision(o, spec, p)
    c = tr._Conditions(o.status, spec.generation, o.now)
    c.set(cond.PLANNED, "True", Reason.REPLANNED if replanned else Reason.PLANNED, p.reason)
    if phase is Phase.DEFERRED:
        c.set(cond.DEFERRED, "True", Reason.WAITING_FOR_WINDOW, p.reason)
    if p.deadline_at_risk:
        c.set(cond.DEADLINE_AT_RISK, "True", Reason.DEADLINE_INFEASIBLE, p.reason)
    else:
        c.set(cond.DEADLINE_AT_RISK, "False", Reason.DEADLINE_FEASIBLE, "the remaining work fits before the deadline")
    results = [o.forecasts[r].result for r in spec.regions if r in o.forecasts]
    source = o.forecasts[p.region].result if p.region in o.forecasts else None
    return {
        "observedGeneration": spec.generation,
        "phase": str(phase),
        "region": p.region,
        "jobName": job_name(spec.name),
        "plannedStart": rfc3339(p.start),
        "latestStart": rfc3339(spec.deadline - spec.estimated_duration * (1.0 - _fraction(o.status))),
        "plan": plan_fields(d, source, o.now),
        "power": {"gpuPowerLimitWatts": None if p.power_limit_watts is None else round(p.power_limit_watts)},
        "segments": _segment_rows(o, p, running),
        "conditions": carbon_condition(c.items, results, spec.generation, o.now),
    }


def _same(o: Observed, p: SegmentPlan, running: bool) -> bool:
    planned = [s for s in _segments(o.status) if s.get("state") != DONE]
    return planned == _segment_rows(o, p, running)[len(_segments(o.status, DONE)) :]


def _intensity_now(o: Observed, region: str) -> float | None:
    data = o.forecasts.get(region)
    if data is None:
        return None
    f = data.forecast
    slot = o.settings.planner.slot
    i = int((o.now - f.start) / slot)
    return float(f.intensity[i]) if 0 <= i < len(f.intensity) else None


# -- first plan and waiting ----------------------------------------------------------------------


def _first_plan(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    p = _plan(o, spec)
    start_now = p.start <= o.now + TOLERANCE
    d = _decision(o, spec, p)
    acts: list[Action] = [_book(o, spec, p), PlanRecorded(late=False)]
    if o.child is None:
        manifest = child_manifest(o, spec, p.region, p.power_limit_watts, d.forecast_intensity, not start_now)
        acts.append(CreateChild(manifest))
    if start_now:
        return [*acts, *_release(o, spec, p, first=True, unsuspend=o.child is not None)]
    patch = _plan_patch(o, spec, p, phase=Phase.DEFERRED, running=False, replanned=False)
    wake = min(p.start, replan_after(o, spec))
    return [
        *acts,
        WriteStatus(patch),
        Emit(Reason.WAITING_FOR_WINDOW, p.reason, warning=p.deadline_at_risk),
        RecordDecision("deferred", p.deadline_at_risk, p.region, p.expected_grams, p.baseline_grams, first=True),
        Requeue(max((wake - o.now).total_seconds(), 0.0)),
    ]


def _while_deferred(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    """Never ran: waits for its first segment, re-planned as forecasts change."""
    planned = _segments(o.status, PLANNED)
    start = parse_rfc3339(planned[0]["start"]) if planned else o.now
    if o.now + TOLERANCE >= start or o.now >= _next_replan(o):
        return _replan_waiting(o, spec, Phase.DEFERRED)
    acts: list[Action] = []
    if o.child is None:  # deleted while waiting: rebuilt, suspended
        region = str(o.status.get("region"))
        acts.append(CreateChild(child_manifest(o, spec, region, None, 0.0, True)))
    return [*acts, Requeue(max((min(start, _next_replan(o)) - o.now).total_seconds(), 0.0))]


def _replan_waiting(o: Observed, spec: TrainingJobSpec, phase: Phase) -> list[Action]:
    """Deferred or paused, at its next start or a periodic re-plan: start (or resume) when the plan
    says now, else record the new plan. A resume that finds no room says so."""
    p = _plan(o, spec)
    if p.start <= o.now + TOLERANCE:
        return [_book(o, spec, p), *_release(o, spec, p, first=phase is Phase.DEFERRED)]
    acts: list[Action] = [_book(o, spec, p)]
    planned = _segments(o.status, PLANNED)
    was = parse_rfc3339(planned[0]["start"]) if planned else None
    if was is not None and was <= o.now + TOLERANCE:
        taken = _gpus_taken(o, spec, p.region)
        why = f"no room for {spec.gpus} GPU(s) in {p.region}" if taken else "the forecast changed"
        message = (
            f"{'Resume' if phase is Phase.PAUSED else 'Start'} planned for {was:%H:%M} UTC postponed: {why}; {p.reason}"
        )
        acts.append(
            Emit(Reason.GPUS_TAKEN if taken else Reason.REPLANNED, message, warning=taken or p.deadline_at_risk)
        )
    if _same(o, p, running=False) and was is not None and was > o.now + TOLERANCE:
        plan_status = dict(o.status.get("plan") or {})
        plan_status["decidedAt"] = rfc3339(o.now)
        acts.append(WriteStatus({"plan": plan_status}))
    else:
        acts.append(WriteStatus(_plan_patch(o, spec, p, phase=phase, running=False, replanned=True)))
        acts.append(RecordDecision("replanned", p.deadline_at_risk, p.region))
    wake = min(p.start, replan_after(o, spec))
    return [*acts, Requeue(max((wake - o.now).total_seconds(), 0.0))]


def _gpus_taken(o: Observed, spec: TrainingJobSpec, region: str) -> bool:
    data = o.forecasts.get(region)
    if data is None:
        return False
    used = sum(r.gpus for r in o.ledger.bookings.values() if r.region == region and r.start <= o.now < r.end)
    return used + spec.gpus > data.forecast.capacity_gpus


def _release(
    o: Observed, spec: TrainingJobSpec, p: SegmentPlan, *, first: bool, unsuspend: bool = True
) -> list[Action]:
    """Start (or resume) the plan's first segment now: unsuspend the child (or create it running)."""
    acts: list[Action] = []
    d = _decision(o, spec, p)
    if o.child is None and unsuspend:
        acts.append(CreateChild(child_manifest(o, spec, p.region, p.power_limit_watts, d.forecast_intensity, False)))
    elif unsuspend:
        acts.append(SetSuspended(False))
    patch = _plan_patch(o, spec, p, phase=Phase.STARTING, running=True, replanned=not first)
    patch["segments"][len(_segments(o.status, DONE))]["start"] = rfc3339(o.now)
    patch["plannedStart"] = rfc3339(o.now)
    seg = p.segments[0]
    length = format_duration(seg.end - o.now)
    if first:
        reason = Reason.STARTED_NOW if not o.status.get("segments") else Reason.WINDOW_REACHED
        message = f"Started in {p.region} at {o.now:%H:%M} UTC for {length}: {p.reason}"
    else:
        reason = Reason.RESUMED
        message = f"Resumed in {p.region} at {o.now:%H:%M} UTC for {length} from its latest checkpoint"
    c = tr._Conditions({"conditions": patch["conditions"]}, spec.generation, o.now)
    c.set(cond.DEFERRED, "False", reason, message)
    c.set(cond.RUNNING, "False", Reason.PODS_PENDING, "waiting for the Job's pods")
    patch["conditions"] = c.items
    if not o.status.get("startTime"):
        patch["startTime"] = rfc3339(o.now)
    acts += [WriteStatus(patch), Emit(reason, message, warning=p.deadline_at_risk)]
    if first:
        acts += [
            RecordDecision("started", p.deadline_at_risk, p.region, p.expected_grams, p.baseline_grams, first=True),
            RecordRelease(max((o.now - spec.created).total_seconds(), 0.0)),
        ]
    return [*acts, Requeue(0.0)]


# -- running -------------------------------------------------------------------------------------


def _while_running(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    running = _segments(o.status, RUNNING)
    started = parse_rfc3339(running[0]["start"]) if running else o.now
    end = parse_rfc3339(running[0]["end"]) if running else o.now
    more = bool(_segments(o.status, PLANNED))
    if more and not _no_progress(o.status) and o.now + TOLERANCE >= end:
        return _pause(o, spec, started)
    if o.now >= _next_replan(o):
        p = _plan(o, spec, running_since=started)
        patch = _plan_patch(
            o, spec, p, phase=Phase.of(o.status.get("phase")) or Phase.STARTING, running=True, replanned=True
        )
        patch.pop("plannedStart")
        row = patch["segments"][len(_segments(o.status, DONE))]
        row.update(start=rfc3339(started), resume=bool(running and running[0].get("resume")))
        return [_book(o, spec, p), WriteStatus(patch), Requeue(0.0)]
    # Follow the pods as any released job does, holding this job's own segments.
    acts = [a for a in follow(o, spec) if not isinstance(a, Book | Requeue)]
    # From the segment's start: the same booking at every look while the end is ahead (quiet polls).
    own = Reservation(str(o.status.get("region")), started, max(end, o.now + o.settings.planner.slot), spec.gpus)
    later = tuple(
        Reservation(str(o.status.get("region")), parse_rfc3339(s["start"]), parse_rfc3339(s["end"]), spec.gpus)
        for s in _segments(o.status, PLANNED)
    )
    wake = min(end if more else o.now + timedelta(hours=1), _next_replan(o), o.now + timedelta(seconds=60))
    return [Book(own, None, later), *acts, Requeue(max((wake - o.now).total_seconds(), 0.0))]


def _pause(o: Observed, spec: TrainingJobSpec, started: datetime) -> list[Action]:
    rows = _segments(o.status)
    for r in rows:
        if r.get("state") == RUNNING:
            r.update(state=DONE, end=rfc3339(o.now))
    planned = [r for r in rows if r.get("state") == PLANNED]
    nxt = planned[0]
    start, end = parse_rfc3339(nxt["start"]), parse_rfc3339(nxt["end"])
    region = str(o.status.get("region"))
    now_i = _intensity_now(o, region)
    at = f"{now_i:.0f} gCO2/kWh" if now_i is not None else "dirtier hours"
    message = (
        f"Paused at {o.now:%H:%M} UTC after {format_duration(o.now - started)}: {at} until {start:%H:%M}; "
        f"resumes at {start:%H:%M} for {format_duration(end - start)}"
    )
    c = tr._Conditions(o.status, spec.generation, o.now)
    c.set(cond.RUNNING, "False", Reason.PAUSED, message)
    c.set(cond.DEFERRED, "True", Reason.PAUSED, message)
    progress = _progress(o.status)
    progress["segmentsDone"] = int(progress.get("segmentsDone") or 0) + 1
    later = tuple(Reservation(region, parse_rfc3339(r["start"]), parse_rfc3339(r["end"]), spec.gpus) for r in planned)
    return [
        Book(later[0], None, later[1:]),
        SetSuspended(True),
        WriteStatus(
            {
                "phase": str(Phase.PAUSED),
                "segments": rows,
                "plannedStart": nxt["start"],
                "progress": progress,
                "conditions": c.items,
            }
        ),
        Emit(Reason.PAUSED, message),
        Requeue(0.0),
    ]


# -- paused --------------------------------------------------------------------------------------


def _while_paused(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    progress = _progress(o.status)
    read = {str(r.get("pod")) for r in progress.get("segmentReports") or []}
    held = o.pods.held
    unread = [h for h in held if h.name not in read and h.terminated]
    if unread:
        return _read_reports(o, spec, unread)
    release: list[Action] = [ReleasePod(h.name) for h in held if h.name in read]
    if any(not h.terminated for h in held) or (o.child is not None and o.child.active):
        return [*release, Requeue(REPORT_POLL)]  # still checkpointing (or being deleted)
    planned = _segments(o.status, PLANNED)
    start = parse_rfc3339(planned[0]["start"]) if planned else o.now
    if o.now + TOLERANCE >= start or o.now >= _next_replan(o):
        return [*release, *_replan_waiting(o, spec, Phase.PAUSED)]
    region = str(o.status.get("region"))
    later = tuple(Reservation(region, parse_rfc3339(s["start"]), parse_rfc3339(s["end"]), spec.gpus) for s in planned)
    book: list[Action] = [Book(later[0], None, later[1:])] if later else []
    return [*release, *book, Requeue(max((min(start, _next_replan(o)) - o.now).total_seconds(), 0.0))]


def _wall_seconds(started: str, finished: str) -> float | None:
    """The paused container's wall time from the kubelet's timestamps (bounds believable energy)."""
    try:
        return (parse_rfc3339(finished) - parse_rfc3339(started)).total_seconds()
    except (TypeError, ValueError):
        return None


def _read_reports(o: Observed, spec: TrainingJobSpec, pods: Sequence[Any]) -> list[Action]:
    """Record the paused pods' reports (energy, progress) in status, then let the pods go."""
    progress = _progress(o.status)
    reports = list(progress.get("segmentReports") or [])
    before = _fraction(o.status)
    fractions = []
    joules = 0.0
    for h in pods:
        wall = _wall_seconds(h.started_at, h.finished_at)
        doc = parse_report(h.message, max_joules(spec.gpus_per_pod, wall))
        entry: dict[str, Any] = {"pod": h.name, "joules": 0.0, "meter": "none"}
        if doc is not None:
            entry.update(joules=float(doc["energyJoules"]), meter=str(doc.get("meter", "unknown")))
            frac = (doc.get("progress") or {}).get("fraction") if isinstance(doc.get("progress"), Mapping) else None
            if isinstance(frac, int | float):
                fractions.append(float(frac))
        if h.started_at:
            entry["startedAt"] = h.started_at
        if h.finished_at:
            entry["finishedAt"] = h.finished_at
        joules += float(entry["joules"])
        reports.append(entry)
    # The least progress any pod reported: every rank resumes from the same checkpoint.
    after = min(fractions) if len(fractions) == len(pods) and fractions else 0.0
    acts: list[Action] = []
    progress.update(
        segmentReports=reports[-1024:],
        energyJoules=round(float(progress.get("energyJoules") or 0.0) + joules, 3),
        fraction=round(max(after, 0.0), 6),
    )
    if after <= before + PROGRESS_EPS:
        progress["noProgressPauses"] = int(progress.get("noProgressPauses") or 0) + 1
        if progress["noProgressPauses"] == 1:
            acts.append(
                Emit(
                    Reason.NO_PROGRESS,
                    f"The trainer reported no progress across the pause ({before:.0%} before, {after:.0%} after: it "
                    "does not checkpoint, or resumed from scratch); it will run to completion without further pauses",
                    warning=True,
                )
            )
    rows = _segments(o.status)
    done = [r for r in rows if r.get("state") == DONE]
    if done:
        last = done[-1]
        last["energyJoules"] = round(float(last.get("energyJoules") or 0.0) + joules, 3)
        last["progress"] = progress["fraction"]
    return [
        # The remaining work changed: re-plan now (a merge patch's null removes decidedAt).
        WriteStatus({"progress": progress, "segments": rows, "plan": {"decidedAt": None}}),
        *acts,
        *(ReleasePod(h.name) for h in pods),
        Requeue(0.0),
    ]


# -- the end -------------------------------------------------------------------------------------


def _finish(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    inputs = o.accounting
    if inputs is None:
        return [Requeue(0.0)]
    child = o.child
    completed = (child.completion_time if child else None) or o.now
    ran = spans(o.status, completed, o.now)
    acc = settle_segments(o.status, inputs.energy, inputs.windows, inputs.actual, inputs.baseline, ran)
    phase, patch = tr.finished(o.status, spec.generation, child, acc, o.now)
    rows = [r for r in _segments(o.status) if r.get("state") != PLANNED]
    for r in rows:
        if r.get("state") == RUNNING:
            r.update(state=DONE, end=rfc3339(completed))
    patch["segments"] = rows
    progress = _progress(o.status)
    if phase is Phase.SUCCEEDED:
        progress["fraction"] = 1.0
    patch["progress"] = progress
    reason = Reason.JOB_SUCCEEDED if phase is Phase.SUCCEEDED else Reason.JOB_FAILED
    n = len(rows)
    return [
        WriteStatus(patch),
        Book(None),
        RecordFinish(str(phase), str(o.status.get("region") or ""), acc),
        Emit(reason, f"{acc.summary(str(phase))} ({n} segment{'s' if n != 1 else ''})", warning=phase is Phase.FAILED),
        Done(),
    ]
