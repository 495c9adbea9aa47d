"""One report row per GreenTrainingJob, read from its status, and the totals over rows.

Pure: a GreenTrainingJob as a plain dict in, typed values out. The status is written by the operator,
but a report must never crash on an odd value (an older operator, a hand edit): a field that cannot
be read becomes None and the row says which field it skipped.

Totals add up only measured results (energy, emissions, baseline, saved), each job once, savings as
they are (negative when the plan did worse); planned figures of jobs that have not finished are never
mixed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from green_operator.accounting.settle import JOULES_PER_KWH
from green_operator.api.conditions import DEADLINE_AT_RISK
from green_operator.times import parse_duration, parse_rfc3339

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class JobRow:
    namespace: str
    name: str
    phase: str
    """Pending when the operator has not written a phase yet."""
    region: str | None = None
    created: datetime | None = None
    planned_start: datetime | None = None
    latest_start: datetime | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    expected_duration: timedelta | None = None
    energy_joules: float | None = None
    meter: str | None = None
    estimated_pods: int = 0
    grams: float | None = None
    baseline_grams: float | None = None
    saved_grams: float | None = None
    intensity: float | None = None
    """Mean intensity over the actual run (status.emissions.intensity)."""
    plan_intensity: float | None = None
    baseline_intensity: float | None = None
    baseline_region: str | None = None
    baseline_start: datetime | None = None
    expected_grams: float | None = None
    plan_baseline_grams: float | None = None
    provider: str | None = None
    data_source: str | None = None
    deadline_at_risk: bool = False
    reason: str = ""
    problems: tuple[str, ...] = field(default=())
    """Status fields that could not be read, or results that are incomplete (and so not totalled)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def energy_kwh(self) -> float | None:
        return None if self.energy_joules is None else self.energy_joules / JOULES_PER_KWH

    @property
    def saved_percent(self) -> float | None:
        if self.saved_grams is None or self.baseline_grams is None or self.baseline_grams <= 0:
            return None
        return 100.0 * self.saved_grams / self.baseline_grams

    @property
    def has_results(self) -> bool:
        """Energy, emissions, baseline and saving are all known: the row counts in the totals."""
        return None not in (self.energy_joules, self.grams, self.baseline_grams, self.saved_grams)

    @property
    def planned_only(self) -> bool:
        """Deferred (or planned) but not started: its window is the plan, not a run."""
        return self.start_time is None

    def duration(self, now: datetime) -> timedelta | None:
        """Actual run time: start to completion, or to ``now`` while the job still runs."""
        if self.start_time is None:
            return None
        end = self.completion_time or (now if self.phase == "Running" else None)
        return None if end is None else max(end - self.start_time, timedelta(0))

    def window(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The run window (actual when started, else planned start + expected duration)."""
        if self.start_time is not None:
            end = self.completion_time or max(now, self.start_time)
            return self.start_time, max(end, self.start_time)
        if self.planned_start is not None and self.expected_duration is not None:
            return self.planned_start, self.planned_start + self.expected_duration
        return None

    @property
    def drawn_intensity(self) -> float | None:
        """The intensity the job ran (or is planned to run) at: measured when known, else planned."""
        return self.intensity if self.intensity is not None else self.plan_intensity


class _Reader:
    """Reads typed values from a status mapping, noting each field it had to skip."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _skip(self, path: str, value: Any, want: str) -> None:
        self.problems.append(f"{path}: {value!r} is not {want}; left out")

    def text(self, m: Mapping[str, Any], key: str, path: str) -> str | None:
        v = m.get(key)
        if v is None or v == "":
            return None
        if not isinstance(v, str):
            self._skip(path, v, "a string")
            return None
        return v

    def number(self, m: Mapping[str, Any], key: str, path: str) -> float | None:
        v = m.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            self._skip(path, v, "a number")
            return None
        return float(v)

    def time(self, m: Mapping[str, Any], key: str, path: str) -> datetime | None:
        v = self.text(m, key, path)
        if v is None:
            return None
        try:
            return parse_rfc3339(v)
        except ValueError:
            self._skip(path, v, "an RFC 3339 time")
            return None

    def duration(self, m: Mapping[str, Any], key: str, path: str) -> timedelta | None:
        v = self.text(m, key, path)
        if v is None:
            return None
        try:
            return parse_duration(v)
        except ValueError:
            self._skip(path, v, "a duration")
            return None

    def mapping(self, m: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        v = m.get(key)
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            self._skip(path, v, "an object")
            return {}
        return v


def row_from_gtj(obj: Mapping[str, Any]) -> JobRow:
    """The report row of one GreenTrainingJob (as the API returns it)."""
    r = _Reader()
    meta = r.mapping(obj, "metadata", "metadata")
    status = r.mapping(obj, "status", "status")
    plan = r.mapping(status, "plan", "status.plan")
    energy = r.mapping(status, "energy", "status.energy")
    emissions = r.mapping(status, "emissions", "status.emissions")

    joules = r.number(energy, "joules", "status.energy.joules")
    if joules is None and energy.get("kilowattHours") is not None:
        # Only the rounded display value is there (e.g. an older status): use it rather than nothing.
        try:
            joules = float(energy["kilowattHours"]) * JOULES_PER_KWH
        except (TypeError, ValueError):
            r._skip("status.energy.kilowattHours", energy["kilowattHours"], "a number of kWh")
    grams = r.number(emissions, "grams", "status.emissions.grams")
    baseline = r.number(emissions, "baselineGrams", "status.emissions.baselineGrams")
    saved = r.number(emissions, "savedGrams", "status.emissions.savedGrams")
    if saved is None and grams is not None and baseline is not None:
        saved = baseline - grams
    pods = energy.get("estimatedPods", 0)
    if isinstance(pods, bool) or not isinstance(pods, int):
        r._skip("status.energy.estimatedPods", pods, "a whole number")
        pods = 0

    results = (joules, grams, baseline, saved)
    if any(v is not None for v in results) and any(v is None for v in results):
        r.problems.append("incomplete results (energy, emissions, baseline or saving missing): not in the totals")

    return JobRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        phase=r.text(status, "phase", "status.phase") or "Pending",
        region=r.text(status, "region", "status.region"),
        created=r.time(meta, "creationTimestamp", "metadata.creationTimestamp"),
        planned_start=r.time(status, "plannedStart", "status.plannedStart"),
        latest_start=r.time(status, "latestStart", "status.latestStart"),
        start_time=r.time(status, "startTime", "status.startTime"),
        completion_time=r.time(status, "completionTime", "status.completionTime"),
        expected_duration=r.duration(plan, "expectedDuration", "status.plan.expectedDuration"),
        energy_joules=joules,
        meter=r.text(energy, "source", "status.energy.source"),
        estimated_pods=pods,
        grams=grams,
        baseline_grams=baseline,
        saved_grams=saved,
        intensity=r.number(emissions, "intensity", "status.emissions.intensity"),
        plan_intensity=r.number(plan, "intensityForecast", "status.plan.intensityForecast"),
        baseline_intensity=r.number(plan, "baselineIntensity", "status.plan.baselineIntensity"),
        baseline_region=r.text(plan, "baselineRegion", "status.plan.baselineRegion"),
        baseline_start=r.time(plan, "baselineStart", "status.plan.baselineStart"),
        expected_grams=r.number(plan, "expectedGrams", "status.plan.expectedGrams"),
        plan_baseline_grams=r.number(plan, "baselineGrams", "status.plan.baselineGrams"),
        provider=r.text(plan, "provider", "status.plan.provider"),
        data_source=r.text(plan, "dataSource", "status.plan.dataSource"),
        deadline_at_risk=_deadline_at_risk(status, plan),
        reason=r.text(plan, "reason", "status.plan.reason") or "",
        problems=tuple(r.problems),
    )


def _deadline_at_risk(status: Mapping[str, Any], plan: Mapping[str, Any]) -> bool:
    """The DeadlineAtRisk condition (set both when planning finds no feasible window and when a job
    started after its latest start), or the plan's own flag where the status keeps it."""
    conditions = status.get("conditions")
    if isinstance(conditions, Sequence) and not isinstance(conditions, str):
        for c in conditions:
            if isinstance(c, Mapping) and c.get("type") == DEADLINE_AT_RISK:
                return c.get("status") == "True"
    return plan.get("deadlineAtRisk") is True


def rows_from_items(items: Iterable[Mapping[str, Any]]) -> list[JobRow]:
    """Rows sorted by namespace, then creation time, then name; each job once (by uid, else name)."""
    seen: set[str] = set()
    rows: list[JobRow] = []
    for obj in items:
        meta = obj.get("metadata") or {}
        key = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        if key in seen:
            continue
        seen.add(key)
        rows.append(row_from_gtj(obj))
    return sorted(rows, key=lambda x: (x.namespace, x.created or _EPOCH, x.name))


@dataclass(frozen=True)
class Totals:
    jobs: int
    with_results: int
    """Jobs whose energy, emissions, baseline and saving are all known; only these are summed."""
    energy_kwh: float
    grams: float
    baseline_grams: float
    saved_grams: float
    deadline_at_risk: int
    estimated_energy_jobs: int
    """Summed jobs whose energy is (partly) an estimate rather than a meter reading."""

    @property
    def saved_percent(self) -> float | None:
        return None if self.baseline_grams <= 0 else 100.0 * self.saved_grams / self.baseline_grams


def compute_totals(rows: Sequence[JobRow]) -> Totals:
    keys = [r.key for r in rows]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"jobs listed more than once would be counted twice: {', '.join(dup)}")
    done = [r for r in rows if r.has_results]
    return Totals(
        jobs=len(rows),
        with_results=len(done),
        energy_kwh=sum(r.energy_kwh or 0.0 for r in done),
        grams=sum(r.grams or 0.0 for r in done),
        baseline_grams=sum(r.baseline_grams or 0.0 for r in done),
        saved_grams=sum(r.saved_grams or 0.0 for r in done),
        deadline_at_risk=sum(1 for r in rows if r.deadline_at_risk),
        estimated_energy_jobs=sum(1 for r in done if r.estimated_pods > 0 or r.meter == "estimate"),
    )
