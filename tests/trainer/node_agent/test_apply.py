"""Limits through NVML (the file-backed fake): clamped, recorded before the change, restored to the
recorded value (not the default), nothing at all in read-only mode."""

from __future__ import annotations

from pathlib import Path

from green_trainer.fake_nvml import FileNvml, gpu_uuid
from green_trainer.node_agent.apply import READ_ONLY, LimitApplier
from green_trainer.node_agent.holdings import Holder, PodKey
from green_trainer.node_agent.plan import Restore, SetLimit
from green_trainer.node_agent.state import StateFile
from green_trainer.power_limit import LimitCode

HOLDER = Holder(PodKey("ml", "a"), "train")


def applier(nvml: FileNvml, tmp_path: Path, read_only: bool = False) -> LimitApplier:
    handles = {gpu_uuid(i): i for i in range(nvml.nvmlDeviceGetCount())}
    return LimitApplier(nvml, handles, None if read_only else StateFile(tmp_path / "state.json"), read_only)


def test_set_then_restore_returns_the_previous_limit_not_the_default(gpu_file, nvml_of, tmp_path: Path) -> None:
    f = gpu_file(2, limit_mw=600_000)  # an admin's 600 W, below the 700 W maximum
    nvml = nvml_of(f)
    a = applier(nvml, tmp_path)
    (outcome,) = a.apply((SetLimit(gpu_uuid(1), 250.0, HOLDER, "u1"),))
    assert (outcome.code, outcome.applied_watts, outcome.applied) == (LimitCode.APPLIED, 250.0, True)
    assert [g.limit_mw for g in f.gpus()] == [600_000, 250_000]
    entry = StateFile(tmp_path / "state.json").entries[gpu_uuid(1)]
    assert (entry.previous_mw, entry.target_mw, entry.pod) == (600_000, 250_000, "ml/a")
    a.apply((SetLimit(gpu_uuid(1), 250.0, HOLDER, "u1"),))  # unchanged: no second NVML call
    assert f.gpus()[1].set_calls == [250_000]
    a.apply((Restore(gpu_uuid(1), entry, "pod ended"),))
    assert [g.limit_mw for g in f.gpus()] == [600_000, 600_000]
    assert StateFile(tmp_path / "state.json").entries == {}


def test_out_of_range_requests_are_clamped_and_say_so(gpu_file, nvml_of, tmp_path: Path) -> None:
    f = gpu_file(1)
    (low,) = applier(nvml_of(f), tmp_path).apply((SetLimit(gpu_uuid(0), 90.0, HOLDER, "u1"),))
    assert (low.code, low.applied_watts) == (LimitCode.CLAMPED, 200.0)
    assert "200-700 W" in low.reason
    assert f.gpus()[0].limit_mw == 200_000


def test_a_refused_set_leaves_no_state_behind(gpu_file, nvml_of, tmp_path: Path) -> None:
    f = gpu_file(1, set_error="NoPermission")
    (o,) = applier(nvml_of(f), tmp_path).apply((SetLimit(gpu_uuid(0), 250.0, HOLDER, "u1"),))
    assert (o.code, o.applied) == (LimitCode.NO_PERMISSION, False)
    assert StateFile(tmp_path / "state.json").entries == {}


def test_read_only_makes_no_limit_call_and_writes_no_state(gpu_file, nvml_of, tmp_path: Path) -> None:
    f = gpu_file(1)
    (o,) = applier(nvml_of(f), tmp_path, read_only=True).apply((SetLimit(gpu_uuid(0), 250.0, HOLDER, "u1"),))
    assert (o.code, o.applied) == (READ_ONLY, False)
    assert "would set 250 W" in o.reason
    assert f.gpus()[0].set_calls == []
    assert not (tmp_path / "state.json").exists()
