"""Which pod holds which physical GPU, from PodResources rows (pure).

What the kubelet and the NVIDIA device plugin put in a row decides what a power limit may touch:
- `nvidia.com/gpu` with device IDs that are GPU UUIDs (the plugin's default `uuid` strategy) or NVML
  indices (`--device-id-strategy=index`): a whole GPU, exclusive unless another container holds it too.
- IDs `<uuid>::<n>` are replicas of one GPU shared by time-slicing or MPS, and `*.shared` resources are
  the plugin's renamed shared GPUs: a limit would change every sharer's GPU, so they are refused.
- `nvidia.com/mig-*` resources and `MIG-` IDs are MIG instances: a limit is per physical GPU, refused.
Only exclusive holdings get a limit and per-pod energy. Other vendors' resources are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from green_trainer.node_agent.podresources import ContainerDevices

NVIDIA = "nvidia.com/"
REPLICA_SEPARATOR = "::"


class Refusal(StrEnum):
    """The `reason` label of greentraining_node_refused_gpus."""

    SHARED = "SharedGpu"
    MIG = "MigInstance"
    UNKNOWN = "UnknownDevice"


@dataclass(frozen=True, order=True)
class PodKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Holder:
    pod: PodKey
    container: str


@dataclass(frozen=True)
class Refused:
    holder: Holder
    device: str
    reason: Refusal
    message: str


@dataclass(frozen=True)
class Holdings:
    exclusive: Mapping[str, Holder]
    """GPU UUID -> the one container that holds it."""
    refused: tuple[Refused, ...]


def _refusal(row: ContainerDevices, device: str, uuids: Sequence[str]) -> tuple[str | None, Refused | None]:
    """The physical GPU UUID a device ID names when it is a whole GPU, else why it is refused."""
    holder = Holder(PodKey(row.namespace, row.pod), row.container)
    if row.resource.startswith(f"{NVIDIA}mig-") or device.upper().startswith("MIG-"):
        text = f"{row.resource} {device} is a MIG instance; a power limit applies to the whole physical GPU"
        return None, Refused(holder, device, Refusal.MIG, text)
    if REPLICA_SEPARATOR in device or row.resource.endswith(".shared"):
        text = f"{row.resource} {device} is a shared GPU (time-slicing or MPS); a limit would change every sharer's"
        return None, Refused(holder, device, Refusal.SHARED, text)
    if device in uuids:
        return device, None
    if device.isdigit() and int(device) < len(uuids):
        return uuids[int(device)], None  # the plugin's index strategy: NVML indices
    text = f"{row.resource} {device} matches no GPU NVML lists on this node"
    return None, Refused(holder, device, Refusal.UNKNOWN, text)


def gpu_holdings(rows: Iterable[ContainerDevices], uuids: Sequence[str]) -> Holdings:
    """Exclusive holders per GPU UUID; a GPU listed for two containers is shared and refused for both."""
    holders: dict[str, list[Holder]] = {}
    refused: list[Refused] = []
    for row in rows:
        if not row.resource.startswith(NVIDIA):
            continue
        for device in row.device_ids:
            uuid, refusal = _refusal(row, device, uuids)
            if refusal is not None:
                refused.append(refusal)
            elif uuid is not None:
                holders.setdefault(uuid, []).append(Holder(PodKey(row.namespace, row.pod), row.container))
    exclusive: dict[str, Holder] = {}
    for uuid, held_by in holders.items():
        if len(held_by) == 1:
            exclusive[uuid] = held_by[0]
            continue
        names = ", ".join(f"{h.pod}/{h.container}" for h in held_by)
        for holder in held_by:
            text = f"GPU {uuid} is allocated to several containers ({names}); a limit would change every one's"
            refused.append(Refused(holder, uuid, Refusal.SHARED, text))
    return Holdings(exclusive, tuple(refused))
