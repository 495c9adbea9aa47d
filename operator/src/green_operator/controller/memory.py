"""An in-memory executor: applies a decision's actions to the capacity ledger and to GreenTrainingJobs
and child Jobs kept in dictionaries, as `ApiExecutor` does against the API server. No I/O, no
clock: the simulator (and tests) drive it.

The same order as `ApiExecutor`: the ledger's actions at once, then the API actions in order (a
create that finds the child already there stops the batch, as a 409 does), and the metrics
actions handed back rather than recorded. A status write is also shown to the ledger as the watch
would show it (`observe_job`), at once.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .actions import (
    Action,
    ApiAction,
    CreateChild,
    CreateService,
    Done,
    Emit,
    MetricAction,
    PatchChild,
    RecordDecision,
    RecordFinish,
    RecordRelease,
    RecreateChild,
    Requeue,
    SetSuspended,
    WriteStatus,
    split,
)
from .ledger import CapacityLedger
from .observed import JobMeta, ServiceState, service_state

JsonDict = dict[str, Any]
ChildHook = Callable[[str, JsonDict], JsonDict]
"""(job key, the child as just written) -> the child as the cluster makes it at once (e.g. the Job
controller starting its pods once it is unsuspended)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge key by key, null deletes a key, anything else (lists
    included) replaces. Returns a new value; neither argument is changed."""
    if not isinstance(patch, Mapping):
        return patch
    out: JsonDict = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


@dataclass
class MemoryOutcome:
    requeue: float | None = None
    done: bool = False
    status_written: bool = False
    child_changed: bool = False
    metrics: list[MetricAction] = field(default_factory=list)


class MemoryExecutor:
    """GreenTrainingJobs (`bodies`) and their child Jobs (`children`), by key; Events counted by
    (reason, warning)."""

    def __init__(self, ledger: CapacityLedger, on_child: ChildHook | None = None) -> None:
        self.ledger = ledger
        self.on_child = on_child
        self.bodies: dict[str, JsonDict] = {}
        self.children: dict[str, JsonDict] = {}
        self.services: dict[str, JsonDict] = {}
        """Headless Services of multi-pod jobs, by job key (named after the child, so one per job)."""
        self.events: Counter[tuple[str, bool]] = Counter()

    def add(self, body: Mapping[str, Any]) -> str:
        """A GreenTrainingJob is created: stored, and shown to the ledger as the watch would."""
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        stored = copy.deepcopy(dict(body))
        stored.setdefault("status", {})
        self.bodies[key] = stored
        self.ledger.first_seen(key, stored["status"])
        self.ledger.observe_job(key, stored)
        return key

    def status(self, key: str) -> JsonDict:
        status: JsonDict = self.bodies[key]["status"]
        return status

    def service(self, key: str, owner_uid: str) -> ServiceState | None:
        """The job's headless Service as the next decision observes it."""
        svc = self.services.get(key)
        return None if svc is None else service_state(svc, owner_uid)

    def set_child(self, key: str, child: JsonDict) -> None:
        """The cluster changed the child (its pods started or ended): the next decision sees it."""
        self.children[key] = child

    def execute(self, meta: JobMeta, actions: Sequence[Action]) -> MemoryOutcome:
        key = meta.key
        ledger_now, rest, recorded = split(actions)
        for la in ledger_now:
            self.ledger.apply(key, la)
        try:
            return self._apply(key, rest)
        finally:
            for pr in recorded:
                self.ledger.apply(key, pr)

    def _apply(self, key: str, actions: Sequence[Action]) -> MemoryOutcome:
        out = MemoryOutcome()
        for a in actions:
            match a:
                case Requeue(after):
                    out.requeue = after
                case Done():
                    out.done = True
                case RecordDecision() | RecordRelease() | RecordFinish():
                    out.metrics.append(a)
                case Emit(reason, _, warning):
                    self.events[(reason, warning)] += 1
                case _:
                    if not self._api(key, a, out):  # type: ignore[arg-type]
                        out.requeue = 0.0
                        return out
        return out

    def _api(self, key: str, a: ApiAction, out: MemoryOutcome) -> bool:
        """One API call; False stops the batch (the child already exists)."""
        match a:
            case CreateChild(manifest):
                if key in self.children:
                    return False  # a 409: the next decision sees the child as it is
                self._write_child(key, _created(manifest), out)
            case RecreateChild(manifest):
                self.children.pop(key, None)
                self._write_child(key, _created(manifest), out)
            case CreateService(manifest):
                # Only this executor creates them, one per job: one already there is ours (adopted).
                self.services.setdefault(key, copy.deepcopy(dict(manifest)))
            case PatchChild(patch):
                self._write_child(key, merge_patch(self._child(key), patch), out)
            case SetSuspended(suspended):
                self._write_child(key, merge_patch(self._child(key), {"spec": {"suspend": suspended}}), out)
            case WriteStatus(patch):
                body = self.bodies.get(key)
                if body is None:
                    out.done = True
                    return False
                body["status"] = merge_patch(body["status"], patch)
                out.status_written = True
                self.ledger.observe_job(key, body)
            case _:
                raise TypeError(f"not an API action: {a!r}")
        return True

    def _child(self, key: str) -> JsonDict:
        child = self.children.get(key)
        if child is None:
            raise LookupError(f"{key}: no child Job to patch (the API would answer 404)")
        return child

    def _write_child(self, key: str, child: JsonDict, out: MemoryOutcome) -> None:
        self.children[key] = self.on_child(key, child) if self.on_child else child
        out.child_changed = True


def _created(manifest: Mapping[str, Any]) -> JsonDict:
    child: JsonDict = copy.deepcopy(dict(manifest))
    child.setdefault("status", {})
    return child
