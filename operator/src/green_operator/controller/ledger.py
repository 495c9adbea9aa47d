"""The capacity ledger: who holds which GPUs, which deferred jobs may be moved aside, the moves in
flight, and the burst of first decisions. One object, one writer (the event loop), fed by the
watches (every GreenTrainingJob, pod and node on the cluster, whichever namespaces this operator
acts on) and by decisions' ledger actions. Pure: no I/O; `wake` is how it nudges a job's driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from green_operator.api import conditions as cond
from green_operator.api.interruption import REPORT_FINALIZER
from green_operator.api.manifests import LABEL_MANAGED_BY, MANAGED_BY
from green_operator.api.phase import Phase
from green_operator.api.spec import body_gpus, gpus_in_template
from green_operator.api.status import reservation_from_status
from green_operator.planner import RepairMemo, Reservation
from green_operator.planner.columns import BookingColumns
from green_operator.regions import NodeInfo, RegionConfig, node_info

from .actions import Book, LedgerAction, MoveAside, PlanRecorded, RescueTried, SettleMove
from .observed import HeldPod, LedgerView, MovableJob, PendingMove, PodsSummary, held_pod

BURST_JOBS = 8
"""First decisions queued beyond which the operator is in a burst."""
CHILD_SLOTS = 4
"""Deferred jobs creating their suspended child at once, after a burst."""
FOREIGN = "pods/"
"""Key prefix of the bookings that stand for other pods' GPUs in a region."""

Body = Mapping[str, object]


@dataclass
class Burst:
    """First decisions waiting, and what waits for them: the late jobs that search for room, and
    the deferred jobs whose suspended child is still to be created.

    The late jobs search one at a time (`turn`): a search takes tens of milliseconds, and all of
    them woken at once would fill the event loop's ready queue, so a job created meanwhile would
    wait behind every search before its first decision, not behind one. The children are created
    a few at a time (`CHILD_SLOTS`), for the same reason and to leave the apiserver to decisions."""

    unplanned: set[str] = field(default_factory=set)
    rescue: set[str] = field(default_factory=set)
    turn: str | None = None
    children: set[str] = field(default_factory=set)
    """Deferred in a burst: the suspended child is created once no first decision waits."""
    creating: set[str] = field(default_factory=set)
    """Woken to create their child, and not yet through that step."""

    def in_burst(self) -> bool:
        """Many first decisions queued: plan each quickly, and leave moving deferred jobs aside for
        the late ones until the queue has drained (a search for room per job holds up the rest)."""
        return len(self.unplanned) > BURST_JOBS

    def may_rescue(self) -> bool:
        return not self.unplanned

    def planned(self, key: str, late: bool, child_later: bool = False) -> list[str]:
        """A first decision is made; the jobs to wake, if their turn has come."""
        self.unplanned.discard(key)
        if late:
            self.rescue.add(key)
        if child_later:
            self.children.add(key)
        return self._next()

    def tried(self, key: str) -> list[str]:
        """`key` searched for room: the turn passes on."""
        self.rescue.discard(key)
        if self.turn == key:
            self.turn = None
        return self._next()

    def stepped(self, key: str) -> list[str]:
        """`key`'s step ended. A turn it did not use passes on: if no first decision waited, it had
        its chance (it started, or a move was pending) and leaves the queue; else it keeps its place
        and the queue resumes once the first decisions are made."""
        if key in self.creating:
            self.creating.discard(key)
            if self.turn != key:
                return self._next()
        if self.turn != key:
            return []
        self.turn = None
        if self.may_rescue():
            self.rescue.discard(key)
        return self._next()

    def forget(self, key: str) -> list[str]:
        self.unplanned.discard(key)
        self.rescue.discard(key)
        self.children.discard(key)
        self.creating.discard(key)
        if self.turn == key:
            self.turn = None
        return self._next()

    def _next(self) -> list[str]:
        if not self.may_rescue():
            return []
        wake: list[str] = []
        if self.turn is None and self.rescue:
            self.turn = min(self.rescue)
            wake.append(self.turn)
        while self.children and len(self.creating) < CHILD_SLOTS:
            key = min(self.children)
            self.children.discard(key)
            self.creating.add(key)
            wake.append(key)
        return wake


@dataclass(frozen=True)
class _PodUse:
    node: str
    gpus: int
    job: tuple[str, str] | None
    """(namespace, job-name) of a managed pod; None for another's pod."""
    unschedulable: str | None


SEGMENT_SEP = "#"
"""Bookings of an interruptible job's later segments are kept under `key#1`, `key#2`, ..."""


def _own_key(k: str, skip: str) -> bool:
    return k == skip or k.startswith(skip + SEGMENT_SEP)


class _Others(Mapping[str, Reservation]):
    """Every booking but one key's (and its later segments'), plus other pods' GPUs: a view, not a copy."""

    def __init__(
        self, bookings: Mapping[str, Reservation], skip: str, extra: Mapping[str, Reservation], own_later: int = 0
    ) -> None:
        self._b, self._skip, self._extra = bookings, skip, extra
        self._hidden = (skip in bookings) + own_later

    def __getitem__(self, k: str) -> Reservation:
        if _own_key(k, self._skip):
            raise KeyError(k)
        return self._extra[k] if k in self._extra else self._b[k]

    def __iter__(self) -> Iterator[str]:
        yield from (k for k in self._b if not _own_key(k, self._skip))
        yield from self._extra

    def __len__(self) -> int:
        return len(self._b) - self._hidden + len(self._extra)


class _Movable(Mapping[str, MovableJob]):
    """The deferred jobs another may move: all but itself and those with a move in flight."""

    def __init__(self, movable: Mapping[str, MovableJob], skip: str, pending: Mapping[str, PendingMove]) -> None:
        self._m, self._skip, self._pending = movable, skip, pending

    def _hidden(self, k: str) -> bool:
        return k == self._skip or k in self._pending

    def __getitem__(self, k: str) -> MovableJob:
        if self._hidden(k):
            raise KeyError(k)
        return self._m[k]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._m if not self._hidden(k))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class CapacityLedger:
    def __init__(
        self,
        regions: Mapping[str, RegionConfig],
        horizon: timedelta,
        wake: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.regions = regions
        self.horizon = horizon
        self.wake = wake
        self._from_status: dict[str, Reservation] = {}
        self._own: dict[str, Reservation | None] = {}
        """Decisions of this process, fresher than status until their status lands."""
        self._later: dict[str, tuple[Reservation, ...]] = {}
        """Interruptible jobs' later segments, as this process booked them."""
        self.held: dict[str, tuple[tuple[str, str], HeldPod]] = {}
        """Paused pods held by the report finalizer, by uid, with their (namespace, Job name)."""
        self._bookings: dict[str, Reservation] = {}
        self._columns = BookingColumns()
        self.movable: dict[str, MovableJob] = {}
        self.pending: dict[str, PendingMove] = {}
        self.memo = RepairMemo()
        self.burst = Burst()
        self.at_risk: set[str] = set()
        self.nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodUse] = {}

    # -- bookings ------------------------------------------------------------------------------

    def _put(self, key: str, r: Reservation | None) -> None:
        """The one place bookings change: the mapping and its columns together."""
        if r is None:
            self._bookings.pop(key, None)
        else:
            self._bookings[key] = r
        self._columns.set(key, r)

    def _merge(self, key: str) -> None:
        self._put(key, self._own[key] if key in self._own else self._from_status.get(key))

    def _book_later(self, key: str, later: tuple[Reservation, ...]) -> None:
        for i in range(len(self._later.get(key, ())) - len(later)):
            self._put(f"{key}{SEGMENT_SEP}{len(later) + i + 1}", None)
        for i, r in enumerate(later):
            self._put(f"{key}{SEGMENT_SEP}{i + 1}", r)
        if later:
            self._later[key] = later
        else:
            self._later.pop(key, None)

    def booking(self, key: str) -> Reservation | None:
        return self._bookings.get(key)

    def bookings(self) -> Mapping[str, Reservation]:
        return self._bookings

    def view(self, key: str, now: datetime) -> LedgerView:
        foreign = self.foreign(now)
        later = len(self._later.get(key, ()))
        own = [key, *(f"{key}{SEGMENT_SEP}{i + 1}" for i in range(later))]
        return LedgerView(
            bookings=_Others(self._bookings, key, foreign, later),
            columns=self._columns.without(own).plus(list(foreign.values())),
            movable=_Movable(self.movable, key, self.pending),
            pending_move=self.pending.get(key),
            in_burst=self.burst.in_burst(),
            may_rescue=self.burst.may_rescue(),
            rescue=key in self.burst.rescue,
            child_waits=key in self.burst.children,
            at_risk=key in self.at_risk,
            memo=self.memo,
        )

    def apply(self, key: str, action: LedgerAction) -> None:
        match action:
            case Book(reservation, movable, later):
                self._own[key] = reservation
                self._merge(key)
                self._book_later(key, later if reservation is not None else ())
                if movable is None:
                    self.movable.pop(key, None)
                else:
                    self.movable[key] = movable
            case MoveAside(decision, previous, gpus):
                other = decision.key
                self.pending[other] = PendingMove(decision, previous, key)
                self._own[other] = Reservation(decision.region, decision.start, decision.end, gpus)
                self._merge(other)
                if other in self.movable:
                    self.movable[other] = MovableJob(self.movable[other].request, decision)
                self.wake(other)
            case SettleMove():
                self.pending.pop(key, None)
            case PlanRecorded(late, child_later):
                for k in self.burst.planned(key, late, child_later):
                    self.wake(k)
            case RescueTried():
                for k in self.burst.tried(key):
                    self.wake(k)

    def stepped(self, key: str) -> None:
        """`key`'s step ended (see Burst.stepped)."""
        for k in self.burst.stepped(key):
            self.wake(k)

    def retired(self, key: str) -> None:
        """`key` takes no more steps (it finished): a turn or a child slot it was woken for, or
        waits for, passes on, else nobody would wake the next one."""
        for k in self.burst.forget(key):
            self.wake(k)

    def first_seen(self, key: str, status: Mapping[str, object]) -> None:
        """A job this operator acts on, seen for the first time: queued for a first decision unless
        it has a plan or has finished."""
        phase = Phase.of(status.get("phase"))
        if not status.get("plannedStart") and not (phase and phase.terminal):
            self.burst.unplanned.add(key)

    def forget(self, key: str) -> None:
        for d in (self._own, self._from_status, self.movable, self.pending):
            d.pop(key, None)
        self._merge(key)
        self._book_later(key, ())
        self.at_risk.discard(key)
        for k in self.burst.forget(key):
            self.wake(k)

    # -- the watches ---------------------------------------------------------------------------

    def observe_job(self, key: str, body: Body) -> None:
        """Any GreenTrainingJob on the cluster: its GPUs as its status books them."""
        status = body.get("status") or {}
        assert isinstance(status, Mapping)
        gpus = body_gpus(body)
        r = reservation_from_status(status, gpus) if gpus is not None else None
        if r is None:
            self._from_status.pop(key, None)
        else:
            self._from_status[key] = r
        if key in self._own and Phase.of(status.get("phase")) in (Phase.SUCCEEDED, Phase.FAILED):
            self._own.pop(key)  # finished: status is the truth from now on
        self._merge(key)
        self.observe_status(key, status)

    def observe_status(self, key: str, status: Mapping[str, object]) -> None:
        phase = Phase.of(status.get("phase"))
        conditions = status.get("conditions")
        risky = not (phase and phase.terminal) and cond.is_true(
            conditions if isinstance(conditions, list) else None, cond.DEADLINE_AT_RISK
        )
        (self.at_risk.add if risky else self.at_risk.discard)(key)

    def observe_node(self, body: Body) -> None:
        info = node_info(body)
        self.nodes[info.name] = info

    def forget_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def observe_pod(self, body: Body) -> tuple[str, str] | None:
        """Any pod on the cluster. Returns the (namespace, Job name) of a managed pod, whose job may
        want to know (unschedulable)."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        assert isinstance(meta, Mapping) and isinstance(spec, Mapping) and isinstance(status, Mapping)
        uid = str(meta.get("uid", ""))
        labels = meta.get("labels") or {}
        assert isinstance(labels, Mapping)
        managed = labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get("job-name")
        job = (str(meta.get("namespace")), str(labels["job-name"])) if managed else None
        if status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
            self._pods.pop(uid, None)
            return job
        unsched = next(
            (
                str(c.get("message") or c.get("reason"))
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
            ),
            None,
        )
        gpus = _pod_gpus(spec)
        if job is None and gpus == 0:
            self._pods.pop(uid, None)
            return None
        self._pods[uid] = _PodUse(str(spec.get("nodeName") or ""), gpus, job, unsched)
        return job

    def forget_pod(self, uid: str) -> None:
        self._pods.pop(uid, None)

    def observe_held(self, body: Body) -> tuple[str, str] | None:
        """One of our pods (any phase): held while it is being deleted and carries the report
        finalizer. Returns its (namespace, Job name) when that changed."""
        meta = body.get("metadata") or {}
        assert isinstance(meta, Mapping)
        labels = meta.get("labels") or {}
        assert isinstance(labels, Mapping)
        uid = str(meta.get("uid", ""))
        if labels.get(LABEL_MANAGED_BY) != MANAGED_BY or not labels.get("job-name"):
            return None
        job = (str(meta.get("namespace")), str(labels["job-name"]))
        finalizers = meta.get("finalizers") or []
        assert isinstance(finalizers, list)
        if meta.get("deletionTimestamp") and REPORT_FINALIZER in finalizers:
            self.held[uid] = (job, held_pod(body))
            return job
        return job if self.held.pop(uid, None) is not None else None

    def let_go(self, namespace: str, pod: str) -> None:
        """Our finalizer was removed from this pod: it is no longer held (the watch will agree)."""
        for uid, (job, h) in list(self.held.items()):
            if job[0] == namespace and h.name == pod:
                del self.held[uid]

    def pods_of(self, namespace: str, job_name: str) -> PodsSummary:
        stuck = [p.unschedulable for p in self._pods.values() if p.job == (namespace, job_name) and p.unschedulable]
        held = tuple(sorted((h for j, h in self.held.values() if j == (namespace, job_name)), key=lambda h: h.name))
        return PodsSummary(len(stuck), stuck[0] if stuck else "", held)

    def foreign(self, now: datetime) -> dict[str, Reservation]:
        """GPUs that pods other than our jobs' hold, per region, as bookings from now over the
        horizon: their end is unknown, and the next re-plan sees them gone."""
        per_region: dict[str, int] = {}
        for p in self._pods.values():
            if p.job is not None or not p.gpus or not p.node:
                continue
            node = self.nodes.get(p.node)
            region = self._region_of(node) if node else None
            if region is not None:
                per_region[region] = per_region.get(region, 0) + p.gpus
        end = now + self.horizon
        return {FOREIGN + r: Reservation(r, now, end, g) for r, g in per_region.items()}

    def _region_of(self, node: NodeInfo) -> str | None:
        for name, cfg in self.regions.items():
            if all(node.labels.get(k) == v for k, v in cfg.node_selector.items()):
                return name
        return None


def _pod_gpus(spec: Mapping[str, object]) -> int:
    """GPUs a pod requests (its containers'; init containers run before and are not counted)."""
    try:
        return gpus_in_template({"spec": spec})
    except (TypeError, ValueError, AttributeError):
        return 0
