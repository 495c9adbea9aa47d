"""Small builders for the decision core's inputs: a GreenTrainingJob body, settings with two
regions, forecasts (flat or with a clean window), a real ledger's view, and the child Job as the API
would return it after a `CreateChild`."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from green_operator.accounting.settle import EnergyTotal, accounting_windows
from green_operator.api.spec import SpecProblem, TrainingJobSpec, parse_spec
from green_operator.carbon.provider import DataSource, ForecastResult, SourceSpan
from green_operator.carbon.series import series_from_values
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.memory import merge_patch
from green_operator.controller.observed import (
    AccountingInputs,
    ChildState,
    LedgerView,
    Observed,
    PodsSummary,
    RegionData,
    ServiceState,
    Settings,
    child_state,
)
from green_operator.controller.observed import JobMeta as JobMeta
from green_operator.controller.reconcile import observe_spec
from green_operator.planner import PlannerSettings
from green_operator.planner.grid import slot_floor
from green_operator.regions import RegionCapacity, RegionConfig, region_forecast
from green_operator.times import rfc3339

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""Every job here is created at T0 (a slot boundary)."""
NS = "ml"
UID = "uid-1"
REGION_LABEL = "topology.kubernetes.io/region"
NORTH, SOUTH = "north", "south"
REGIONS = {
    NORTH: RegionConfig(NORTH, {REGION_LABEL: NORTH}),
    SOUTH: RegionConfig(SOUTH, {REGION_LABEL: SOUTH}, tolerations=({"key": "south", "operator": "Exists"},)),
}
PLANNER = PlannerSettings(horizon=timedelta(hours=24))
SETTINGS = Settings(regions=REGIONS, planner=PLANNER, replan_interval=timedelta(minutes=10))
CAPACITY = 16

CLEAN, DIRTY = 50.0, 400.0
Intensity = Callable[[datetime], float]


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


def at(h: float) -> datetime:
    return T0 + hours(h)


def template(image: str = "trainer:1", gpus: int = 1) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": gpus} if gpus else {"cpu": "1"}
    return {"spec": {"containers": [{"name": "train", "image": image, "resources": {"limits": limits}}]}}


def body(
    name: str = "job",
    *,
    generation: int = 1,
    duration: str = "2h",
    max_delay: str = "12h",
    regions: Sequence[str] | None = None,
    gpus: int = 1,
    parallelism: int | None = None,
    image: str = "trainer:1",
    power: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A GreenTrainingJob as the API returns it. Power defaults to None (no limit): plans are then
    about place and time only."""
    spec: dict[str, Any] = {
        "estimatedDuration": duration,
        "schedule": {"maxDelay": max_delay},
        "template": template(image, gpus),
        "power": dict(power) if power is not None else {"policy": "None"},
    }
    if regions is not None:
        spec["placement"] = {"regions": list(regions)}
    if parallelism is not None:
        spec["parallelism"] = parallelism
    out: dict[str, Any] = {
        "apiVersion": "greentraining.io/v1alpha1",
        "kind": "GreenTrainingJob",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": UID if name == "job" else f"uid-{name}",
            "generation": generation,
            "creationTimestamp": rfc3339(T0),
        },
        "spec": spec,
    }
    if status is not None:
        out["status"] = dict(status)
    return out


def spec_of(b: Mapping[str, Any]) -> TrainingJobSpec | list[SpecProblem]:
    return parse_spec(b, SETTINGS.region_names)


def parsed(b: Mapping[str, Any]) -> TrainingJobSpec:
    s = spec_of(b)
    assert isinstance(s, TrainingJobSpec), s
    return s


# -- carbon ----------------------------------------------------------------------------------------


def flat(value: float = 100.0) -> Intensity:
    return lambda t: value


def shaped(clean_from: float = 4.0, clean_to: float = 8.0, clean: float = CLEAN, dirty: float = DIRTY) -> Intensity:
    """Dirty, except a clean window [T0 + clean_from h, T0 + clean_to h)."""
    return lambda t: clean if at(clean_from) <= t < at(clean_to) else dirty


def result(
    region: str,
    intensity: Intensity,
    now: datetime,
    *,
    source: DataSource = DataSource.LIVE,
    error: str | None = None,
) -> ForecastResult:
    start = slot_floor(now, hours(1))
    count = int(PLANNER.horizon / hours(1)) + 2
    values = [intensity(start + hours(i)) for i in range(count)]
    series = series_from_values(region, "emaps", start, hours(1), values)
    provider = "emaps" if source is DataSource.LIVE else str(source)
    span = SourceSpan(source, provider, start, start + hours(count))
    return ForecastResult(region, series, source, provider, stale=False, error=error, spans=(span,))


def region_data(
    region: str,
    intensity: Intensity,
    now: datetime,
    *,
    capacity: int = CAPACITY,
    source: DataSource = DataSource.LIVE,
    error: str | None = None,
) -> RegionData:
    res = result(region, intensity, now, source=source, error=error)
    view = region_forecast(
        region, RegionCapacity(capacity, "unknown"), res, slot_floor(now, PLANNER.slot), PLANNER.slot, PLANNER.horizon
    )
    return RegionData(view, res)


def forecasts(
    now: datetime,
    north: Intensity | None = None,
    south: Intensity | None = None,
    **kw: Any,
) -> dict[str, RegionData]:
    """Both regions; north defaults to a clean window 4-8 h after T0, south to dirty all day."""
    return {
        NORTH: region_data(NORTH, north or shaped(), now, **kw),
        SOUTH: region_data(SOUTH, south or flat(DIRTY), now, **kw),
    }


# -- ledger, child, accounting ---------------------------------------------------------------------


def new_ledger() -> CapacityLedger:
    return CapacityLedger(REGIONS, PLANNER.horizon)


def view(key: str = f"{NS}/job", now: datetime = T0, ledger: CapacityLedger | None = None) -> LedgerView:
    return (ledger or new_ledger()).view(key, now)


def child_body(
    manifest: Mapping[str, Any],
    *,
    suspended: bool | None = None,
    started: datetime | None = None,
    ready: int = 0,
    active: int = 0,
    complete_at: datetime | None = None,
    failed_at: datetime | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """The child Job as the API holds it, from the manifest an action created it with."""
    job = copy.deepcopy(dict(manifest))
    if suspended is not None:
        job["spec"]["suspend"] = suspended
    st: dict[str, Any] = {"ready": ready, "active": active}
    if started is not None:
        st["startTime"] = rfc3339(started)
    if complete_at is not None:
        st["completionTime"] = rfc3339(complete_at)
        st["succeeded"] = job["spec"].get("completions", 1)
        st["conditions"] = [{"type": "Complete", "status": "True", "lastTransitionTime": rfc3339(complete_at)}]
    if failed_at is not None:
        st["failed"] = 1
        st["conditions"] = [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": rfc3339(failed_at),
            }
        ]
    if deleting:
        job["metadata"]["deletionTimestamp"] = rfc3339(T0)
    job["status"] = st
    return job


def child(manifest: Mapping[str, Any], owner_uid: str = UID, **kw: Any) -> ChildState:
    return child_state(child_body(manifest, **kw), owner_uid)


def accounting(
    status: Mapping[str, Any], c: ChildState | None, now: datetime, joules: float = 3.6e6
) -> AccountingInputs:
    windows = accounting_windows(status, c.start_time if c else None, c.completion_time if c else None, NORTH, now)
    energy = EnergyTotal(joules, "nvml", 0, None, "")
    actual = result(windows.actual.region, flat(CLEAN), windows.actual.start)
    baseline = result(windows.baseline.region, flat(DIRTY), windows.baseline.start)
    return AccountingInputs(energy, windows, actual, baseline)


def observed(
    b: Mapping[str, Any],
    *,
    status: Mapping[str, Any] | None = None,
    child: ChildState | None = None,
    now: datetime = T0,
    ledger: LedgerView | None = None,
    data: Mapping[str, RegionData] | None = None,
    pods: PodsSummary | None = None,
    accounting: AccountingInputs | None = None,
    settings: Settings = SETTINGS,
    service: ServiceState | None = None,
) -> Observed:
    meta = JobMeta.of(b)
    return Observed(
        meta=meta,
        spec=observe_spec(b, status if status is not None else b.get("status") or {}, SETTINGS.region_names),
        status=dict(status if status is not None else b.get("status") or {}),
        child=child,
        now=now,
        settings=settings,
        ledger=ledger if ledger is not None else view(meta.key, now),
        forecasts=data if data is not None else forecasts(now),
        pods=pods or PodsSummary(),
        accounting=accounting,
        service=service,
    )


def merge(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch (null deletes; lists and scalars replace), on copies."""
    merged: dict[str, Any] = merge_patch(copy.deepcopy(dict(target)), copy.deepcopy(dict(patch)))
    return merged
