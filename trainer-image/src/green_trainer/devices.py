"""Which of the GPUs NVML enumerates belong to this container (pure).

NVIDIA_VISIBLE_DEVICES is what the container runtime (and the Kubernetes device plugin) sets: host
indices or UUIDs. When the runtime has already limited the container to its devices, NVML sees
exactly those and numbers them from 0, so host indices must not be applied again. A privileged
container sees every GPU of the node, and then the list selects among them. CUDA_VISIBLE_DEVICES
narrows further, counted within what is left, the way CUDA itself reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_ALL = {"all", "void"}


@dataclass(frozen=True)
class Enumerated:
    """A GPU as NVML enumerates it inside the container."""

    index: int
    uuid: str


@dataclass(frozen=True)
class Selection:
    indices: tuple[int, ...]
    notes: tuple[str, ...] = ()


def _tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",") if token.strip()]


def _match_uuid(token: str, devices: Sequence[Enumerated]) -> Enumerated | None:
    """CUDA accepts any unique prefix of a UUID ("GPU-8932f937")."""
    exact = [d for d in devices if d.uuid.lower() == token.lower()]
    if exact:
        return exact[0]
    prefixed = [d for d in devices if d.uuid.lower().startswith(token.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def _by_runtime(value: str | None, devices: Sequence[Enumerated]) -> tuple[list[Enumerated], list[str]]:
    if value is None or value.strip().lower() in _ALL or not value.strip():
        return list(devices), []
    if value.strip().lower() == "none":
        return [], []
    tokens = _tokens(value)
    notes: list[str] = []
    chosen: list[Enumerated] = []
    indices = [t for t in tokens if t.isdigit()]
    if indices and len(devices) <= len(tokens):
        # The runtime mounted only the listed GPUs; their host indices mean nothing in here.
        return list(devices), []
    for token in tokens:
        if token.upper().startswith("MIG-"):
            notes.append(f"NVIDIA_VISIBLE_DEVICES: MIG device {token} is not metered (no NVML energy for MIG)")
            continue
        found = (
            next((d for d in devices if d.index == int(token)), None)
            if token.isdigit()
            else _match_uuid(token, devices)
        )
        if found is None:
            notes.append(f"NVIDIA_VISIBLE_DEVICES: no GPU {token!r} among those NVML sees; ignored")
        elif found not in chosen:
            chosen.append(found)
    return chosen, notes


def _by_cuda(value: str | None, devices: list[Enumerated]) -> tuple[list[Enumerated], list[str]]:
    if value is None:
        return devices, []
    chosen: list[Enumerated] = []
    for token in _tokens(value):
        if token.isdigit():
            found = devices[int(token)] if int(token) < len(devices) else None
        elif token.upper().startswith("GPU-"):
            found = _match_uuid(token, devices)
        else:
            found = None
        if found is None:
            # CUDA stops reading the list at the first entry it cannot use, and so do we.
            return chosen, [f"CUDA_VISIBLE_DEVICES: {token!r} matches no visible GPU; later entries ignored"]
        if found not in chosen:
            chosen.append(found)
    return chosen, []


def select_devices(
    nvidia_visible_devices: str | None, cuda_visible_devices: str | None, devices: Sequence[Enumerated]
) -> Selection:
    """The NVML indices of this container's GPUs, in the order the training process sees them."""
    by_runtime, notes = _by_runtime(nvidia_visible_devices, devices)
    by_cuda, more = _by_cuda(cuda_visible_devices, by_runtime)
    return Selection(indices=tuple(d.index for d in by_cuda), notes=tuple(notes + more))


def count_listed(nvidia_visible_devices: str | None) -> int:
    """How many GPUs the runtime variable lists, for the estimate when NVML cannot be read."""
    if nvidia_visible_devices is None:
        return 0
    value = nvidia_visible_devices.strip().lower()
    if value in {"", "none", "void", "all"}:
        return 0
    return len(_tokens(value))
