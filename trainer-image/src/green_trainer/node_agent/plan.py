"""What to do with each GPU's power limit this poll (pure): set a pod's limit, or restore a GPU.

Restores follow the state file, not the pods: every GPU the agent changed and that no live pod holds
with a limit any more goes back to the limit recorded before the first change. Nothing is decided
while the pod watch has not synced, so a restarting agent never lifts a running pod's limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from green_trainer.node_agent.holdings import Holder, Holdings, PodKey
from green_trainer.node_agent.pods import PodInfo, parse_power_limit


@dataclass(frozen=True)
class StateEntry:
    """One GPU the agent changed: the limit to restore, and for which pod it set what."""

    uuid: str
    previous_mw: int
    target_mw: int
    pod: str
    pod_uid: str


@dataclass(frozen=True)
class SetLimit:
    uuid: str
    watts: float
    holder: Holder
    pod_uid: str


@dataclass(frozen=True)
class Restore:
    uuid: str
    entry: StateEntry
    why: str


@dataclass(frozen=True)
class BadAnnotation:
    pod: PodKey
    pod_uid: str
    value: str
    message: str


Action = SetLimit | Restore


@dataclass(frozen=True)
class LimitPlan:
    actions: tuple[Action, ...]
    bad: tuple[BadAnnotation, ...]


def plan_limits(
    holdings: Holdings, pods: Mapping[PodKey, PodInfo] | None, state: Mapping[str, StateEntry]
) -> LimitPlan:
    if pods is None:
        return LimitPlan((), ())
    actions: list[Action] = []
    bad: dict[PodKey, BadAnnotation] = {}
    wanted: set[str] = set()
    for uuid, holder in sorted(holdings.exclusive.items()):
        info = pods.get(holder.pod)
        if info is None or info.terminal:
            continue  # ended or deleted: restored below if the agent changed it
        requested = parse_power_limit(info.power_limit)
        if requested.error:
            bad[holder.pod] = BadAnnotation(holder.pod, info.uid, info.power_limit or "", requested.error)
        if requested.watts is None:
            continue
        wanted.add(uuid)
        actions.append(SetLimit(uuid, requested.watts, holder, info.uid))
    for uuid, entry in sorted(state.items()):
        if uuid in wanted:
            continue
        current = holdings.exclusive.get(uuid)
        why = f"pod {entry.pod} no longer holds it" if current is None or str(current.pod) != entry.pod else ""
        actions.append(Restore(uuid, entry, why or f"pod {entry.pod} asks for no limit any more"))
    return LimitPlan(tuple(actions), tuple(bad.values()))
