"""The pause/resume helpers of the progress API and the report's outcome: pure pieces of the contract."""

from __future__ import annotations

import pytest

from green_trainer import progress
from green_trainer.progress_files import Progress, decode, encode
from green_trainer.report import outcome


def test_the_checkpointed_fraction_travels_in_the_progress_file_and_the_least_wins() -> None:
    assert decode(encode(Progress(1, 2, 3, 0.25))) == Progress(1, 2, 3, 0.25)
    assert decode(encode(Progress(1, 2, 3))) == Progress(1, 2, 3)
    assert (Progress(1, 1, 0, 0.5) + Progress(1, 1, 0, 0.4)).fraction == 0.4
    assert (Progress(1, 1, 0, None) + Progress(1, 1, 0, 0.4)).fraction == 0.4
    with pytest.raises(ValueError, match="'fraction' must be a number from 0 to 1"):
        decode('{"samples": 1, "fraction": 1.5}')


def test_checkpointed_refuses_a_share_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="share of the training saved"):
        progress.checkpointed(2.0)


def test_checkpoint_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREEN_CHECKPOINT_DIR", raising=False)
    assert progress.checkpoint_dir() is None
    monkeypatch.setenv("GREEN_CHECKPOINT_DIR", "/ck")
    assert str(progress.checkpoint_dir()) == "/ck"


@pytest.mark.parametrize(
    ("code", "signal", "expected"),
    [
        (0, None, "completed"),
        (1, None, "failed"),
        (143, "SIGTERM", "paused"),
        (0, "SIGTERM", "paused"),
        (137, "SIGTERM", "failed"),
    ],
)
def test_outcome(code: int, signal: str | None, expected: str) -> None:
    assert outcome(code, signal) == expected
