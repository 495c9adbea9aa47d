"""The pause/resume contract on CPU: the reference trainer under the real wrapper, paused twice by
SIGTERM (as a suspended Job's pod is), resumed from the latest checkpoint in GREEN_CHECKPOINT_DIR,
ends bit-for-bit where an uninterrupted run with the same seed does.

Bit-exact, not a tolerance: on one device with one thread the same operations run in the same order
on the same values; the checkpoint holds the model, AdamW's state and the position in the epoch, and
the shuffle depends only on (seed, epoch). Any drift would mean lost or repeated work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

GREEN_TRAINER = str(Path(sys.executable).parent / "green-trainer")
ARGS = ["--threads", "1", "--samples", "4480", "--batch-size", "64", "--epochs", "3", "--patience", "0", "--seed", "7"]


def run(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    command = [GREEN_TRAINER, "run", "--", sys.executable, "-m", "green_trainer.reference_train", *ARGS, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def paused_after(env: dict[str, str], steps: int, schema: dict[str, Any]) -> dict[str, Any]:
    """Run until the training has made `steps` more steps (slowed down so the signal lands mid-run),
    then SIGTERM the wrapper as the kubelet does; returns the wrapper's report."""
    training = run(env, "--step-sleep", "0.005", "--log-every", "5")
    try:
        assert training.stdout is not None
        start = None
        for line in training.stdout:
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "start":
                start = event["step"]
            if event.get("event") == "step" and start is not None and event["step"] >= start + steps:
                break
        training.send_signal(signal.SIGTERM)
        rest, stderr = training.communicate(timeout=60)
    finally:
        training.kill()
    assert training.returncode == 143, stderr
    saved = [e for e in events(rest) if e["event"] == "checkpoint" and e["reason"] == "SIGTERM"]
    assert len(saved) == 1, rest
    assert start is not None
    assert saved[0]["step"] >= start + steps
    report: dict[str, Any] = json.loads(Path(env["GREEN_REPORT_PATH"]).read_text())
    jsonschema.validate(report, schema)
    return report


def test_paused_twice_ends_bit_for_bit_like_an_uninterrupted_run(
    tmp_path: Path, wrapper_env: dict[str, str], report_schema: dict[str, Any]
) -> None:
    straight = run({**wrapper_env, "GREEN_CHECKPOINT_DIR": str(tmp_path / "straight")})
    out, err = straight.communicate(timeout=120)
    assert straight.returncode == 0, err
    expected = next(e for e in events(out) if e["event"] == "done")
    assert json.loads(Path(wrapper_env["GREEN_REPORT_PATH"]).read_text())["outcome"] == "completed"

    env = {**wrapper_env, "GREEN_CHECKPOINT_DIR": str(tmp_path / "paused")}
    fractions = []
    for _ in range(2):
        report = paused_after(env, 30, report_schema)
        assert report["outcome"] == "paused"
        assert report["terminatedBy"] == "SIGTERM"
        fractions.append(report["progress"]["fraction"])
    assert 0 < fractions[0] < fractions[1] < 1  # each pause saved more of the training
    assert len(list((tmp_path / "paused").glob("step-*.pt"))) <= 2  # older checkpoints pruned

    last = run(env)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    resumed = next(e for e in events(out) if e["event"] == "resumed")
    assert resumed["step"] > 0
    done = next(e for e in events(out) if e["event"] == "done")
    assert done["step"] == expected["step"]
    assert done["final_val_loss"] == expected["final_val_loss"]
    assert done["params"] == expected["params"]
    final = json.loads(Path(env["GREEN_REPORT_PATH"]).read_text())
    assert final["outcome"] == "completed"
    assert final["progress"]["fraction"] == 1.0
