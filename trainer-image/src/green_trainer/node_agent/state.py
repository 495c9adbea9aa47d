"""The state file on the node (hostPath): each GPU the agent changed and the limit to restore.

Written before every limit change (write-ahead), atomically (temp file, fsync, rename), so after a
SIGKILL at any point the next agent knows every GPU to restore. A file it cannot read stops the agent
with an error naming it: starting afresh would forget limits it must restore.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from green_trainer.node_agent.plan import StateEntry

VERSION = 1


class StateFileError(Exception):
    pass


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = self._load()

    @property
    def entries(self) -> dict[str, StateEntry]:
        return dict(self._entries)

    def _load(self) -> dict[str, StateEntry]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {VERSION}")
            return {uuid: StateEntry(**entry) for uuid, entry in doc["gpus"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise StateFileError(
                f"state file {self.path} is unreadable ({err}); it lists the GPU limits to restore. Restore them"
                " by hand (nvidia-smi -pl) if needed, then move the file aside to start afresh"
            ) from err

    def put(self, entry: StateEntry) -> None:
        self._entries[entry.uuid] = entry
        self._write()

    def remove(self, uuid: str) -> None:
        if self._entries.pop(uuid, None) is not None:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        doc = {"version": VERSION, "gpus": {u: asdict(e) for u, e in sorted(self._entries.items())}}
        with tmp.open("w") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a node crash
        finally:
            os.close(dir_fd)
