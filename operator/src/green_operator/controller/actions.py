"""What a decision asks for, as values. The executor applies them in order and decides nothing.

Ledger actions (`Book`, `MoveAside`, `SettleMove`, `RescueTried`) are applied synchronously, before
any API call, so no other job's decision sees capacity half-updated. API actions act on this job's
child Job (its name is deterministic) or on its status. `Requeue` and `Done` end every list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from green_operator.accounting.settle import Accounting
from green_operator.planner import Decision, Reservation

from .observed import MovableJob


@dataclass(frozen=True)
class CreateChild:
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class RecreateChild:
    """Delete the child (it never started) and create it from a new template."""

    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class CreateService:
    """Create the job's headless Service (multi-pod rendezvous); one that exists is adopted if ours."""

    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class PatchChild:
    patch: Mapping[str, Any]
    """A JSON merge patch of the child Job."""


@dataclass(frozen=True)
class SetSuspended:
    suspended: bool


@dataclass(frozen=True)
class WriteStatus:
    patch: Mapping[str, Any]
    """A JSON merge patch of `status` (lists such as conditions are written whole)."""


@dataclass(frozen=True)
class Emit:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Book:
    """This job's GPUs in the ledger (None: it holds none any more), and whether it may be moved."""

    reservation: Reservation | None
    movable: MovableJob | None = None
    later: tuple[Reservation, ...] = ()
    """An interruptible job's later segments, booked too (its next or current one is `reservation`)."""


@dataclass(frozen=True)
class ReleasePod:
    """Remove the operator's report finalizer from a paused pod whose report has been read."""

    name: str


@dataclass(frozen=True)
class MoveAside:
    """Another (deferred) job is moved to make room: book it there; its own task applies the move."""

    decision: Decision
    previous: Decision
    gpus: int


@dataclass(frozen=True)
class SettleMove:
    """This job's pending move is applied (or void): others may move it again."""


@dataclass(frozen=True)
class PlanRecorded:
    """A first decision is made (the burst count drops); `late` jobs search for room after the burst,
    and a `child_later` job creates its suspended child then."""

    late: bool = False
    child_later: bool = False


@dataclass(frozen=True)
class RescueTried:
    """A late job searched for room: it leaves the rescue list."""


@dataclass(frozen=True)
class RecordDecision:
    outcome: str
    """deferred, started or replanned."""
    deadline_at_risk: bool
    region: str
    expected_grams: float = 0.0
    baseline_grams: float = 0.0
    first: bool = False
    """A first decision: its expected and baseline emissions are counted once."""


@dataclass(frozen=True)
class RecordRelease:
    waited_seconds: float


@dataclass(frozen=True)
class RecordFinish:
    phase: str
    region: str
    accounting: Accounting


@dataclass(frozen=True)
class Requeue:
    """Look again after this many seconds, or sooner on a watch event."""

    after: float


@dataclass(frozen=True)
class Done:
    """Nothing more to do for this job: it finished."""


LedgerAction = Book | MoveAside | SettleMove | PlanRecorded | RescueTried
ApiAction = CreateChild | RecreateChild | CreateService | PatchChild | SetSuspended | WriteStatus | Emit | ReleasePod
MetricAction = RecordDecision | RecordRelease | RecordFinish
Action = LedgerAction | ApiAction | MetricAction | Requeue | Done


_LEDGER = (Book, MoveAside, SettleMove, PlanRecorded, RescueTried)


def split(actions: Sequence[Action]) -> tuple[list[LedgerAction], list[Action], list[PlanRecorded]]:
    """How every executor orders a decision: the ledger's actions to apply at once, then the rest
    in order, then the first-plan records, applied once the writes are done (a job counts in a
    burst while its writes are in flight)."""
    now: list[LedgerAction] = [a for a in actions if isinstance(a, _LEDGER) and not isinstance(a, PlanRecorded)]
    after = [a for a in actions if isinstance(a, PlanRecorded)]
    return now, [a for a in actions if not isinstance(a, _LEDGER)], after
