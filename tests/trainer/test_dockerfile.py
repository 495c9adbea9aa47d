"""The image cannot be built here (no Docker), so its Dockerfile is checked as text."""

import json
import re
import tomllib
from pathlib import Path

TRAINER_IMAGE = Path(__file__).resolve().parents[2] / "trainer-image"

DOCKERFILE = (TRAINER_IMAGE / "Dockerfile").read_text()


def _instructions():
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _last(keyword):
    return [rest for key, rest in _instructions() if key == keyword][-1]


def test_the_base_is_a_cuda_pytorch_image_matching_the_torch_pin():
    base = dict(arg.split("=", 1) for key, arg in _instructions() if key == "ARG" and "=" in arg)["BASE_IMAGE"]
    assert _last("FROM") == "${BASE_IMAGE}"
    image, tag = base.split(":")
    assert image == "pytorch/pytorch"
    assert re.fullmatch(r"\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", tag)
    pyproject = tomllib.loads((TRAINER_IMAGE / "pyproject.toml").read_text())
    (torch_pin,) = pyproject["project"]["optional-dependencies"]["torch"]
    assert torch_pin == f"torch=={tag.split('-')[0]}"


def test_it_runs_as_a_non_root_user():
    user = _last("USER").split(":")[0]
    assert user not in {"root", "0"}
    assert f"--uid {user}" in DOCKERFILE


def test_the_entrypoint_is_the_wrapper_behind_an_init():
    entrypoint = json.loads(_last("ENTRYPOINT"))
    assert entrypoint[-3:] == ["green-trainer", "run", "--"]
    assert entrypoint[0] == "/usr/bin/tini"
    assert json.loads(_last("CMD"))[:3] == ["python", "-m", "green_trainer.reference_train"]


def test_the_package_is_installed_and_the_metrics_port_exposed():
    runs = " ".join(rest for key, rest in _instructions() if key == "RUN")
    assert "pip install" in runs
    assert "tini" in runs
    assert _last("EXPOSE") == "9402"
    assert ("COPY", "src ./src") in _instructions()
