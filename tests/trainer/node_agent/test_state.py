"""The state file: survives a new process, is written atomically, and refuses to start on garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from green_trainer.node_agent.plan import StateEntry
from green_trainer.node_agent.state import StateFile, StateFileError


def test_entries_survive_a_new_reader_and_removal_is_persisted(tmp_path: Path) -> None:
    path = tmp_path / "d" / "state.json"
    state = StateFile(path)
    state.put(StateEntry("g0", 700_000, 250_000, "ml/a", "u1"))
    state.put(StateEntry("g1", 650_000, 250_000, "ml/a", "u1"))
    state.remove("g0")
    again = StateFile(path)
    assert again.entries == {"g1": StateEntry("g1", 650_000, 250_000, "ml/a", "u1")}
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("text", ["{not json", json.dumps({"version": 99, "gpus": {}}), json.dumps({"version": 1})])
def test_an_unreadable_file_stops_the_agent_naming_it_and_the_fix(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=r"state\.json is unreadable .*move the file aside"):
        StateFile(path)
