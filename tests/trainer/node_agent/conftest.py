"""Fake GPUs in a file (green_trainer.fake_nvml): the same state the agent's subprocesses read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from green_trainer.fake_nvml import FakeNvmlFile, FileGpu, FileNvml, gpu_uuid


def make_gpus(path: Path, count: int, **kwargs: object) -> FakeNvmlFile:
    return FakeNvmlFile(path).create([FileGpu(uuid=gpu_uuid(i), **kwargs) for i in range(count)])  # type: ignore[arg-type]


@pytest.fixture
def gpu_file(tmp_path: Path) -> Callable[..., FakeNvmlFile]:
    def make(count: int = 4, **kwargs: object) -> FakeNvmlFile:
        return make_gpus(tmp_path / "nvml.json", count, **kwargs)

    return make


@pytest.fixture
def nvml_of() -> Callable[[FakeNvmlFile], FileNvml]:
    return lambda f: FileNvml(f.path)
