"""operator/Dockerfile, the image the chart runs. It cannot be built here (no Docker), so its text is
checked against what the chart and the package expect of it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

from harness.cluster import REPO
from harness.operator import IMAGE_ENV
from tests.charts.chart import IMAGE_TRACES, one, operator_config, render

OPERATOR = REPO / "operator"
DOCKERFILE = (OPERATOR / "Dockerfile").read_text()
IGNORE = (OPERATOR / "Dockerfile.dockerignore").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for key, rest in _instructions():
        if key == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((key, rest))
    return stages


def _final(keyword: str) -> list[str]:
    return [rest for key, rest in _stages()[-1] if key == keyword]


def test_the_base_is_slim_python_matching_the_packages_python() -> None:
    args = dict(rest.split("=", 1) for key, rest in _instructions() if key == "ARG" and "=" in rest)
    image, tag = args["PYTHON_IMAGE"].split(":")
    assert image == "python"
    assert re.fullmatch(r"3\.11(\.\d+)?-slim(-\w+)?", tag)
    requires = tomllib.loads((OPERATOR / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.12"
    stages = _stages()
    assert len(stages) == 2, "build in one stage, run from a clean one"
    assert all(s[0] == ("FROM", "${PYTHON_IMAGE}" + (" AS build" if i == 0 else "")) for i, s in enumerate(stages))


def test_the_runtime_stage_gets_the_installed_venv_and_no_sources() -> None:
    build, final = _stages()
    assert ("COPY", "operator/src ./src") in build
    assert any(k == "RUN" and "pip install" in r and "/opt/green/venv" in r for k, r in build)
    assert ("COPY", "--from=build /opt/green/venv /opt/green/venv") in final
    assert not any(k == "COPY" and "operator/src" in r for k, r in final)
    env = " ".join(_final("ENV"))
    assert "PATH=/opt/green/venv/bin:" in env
    # The chart mounts the root filesystem read-only: Python must not try to write bytecode.
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_it_runs_as_the_non_root_user_the_chart_expects() -> None:
    (user,) = _final("USER")
    uid, gid = user.split(":")
    assert uid.isdigit(), "a numeric user lets the kubelet check runAsNonRoot"
    assert uid != "0"
    assert f"--uid {uid}" in " ".join(_final("RUN"))
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))


def test_the_entrypoint_is_green_operator_run_with_the_charts_config_path() -> None:
    entrypoint = json.loads(_final("ENTRYPOINT")[-1])
    cmd = json.loads(_final("CMD")[-1])
    assert entrypoint == ["green-operator", "run"]
    scripts = tomllib.loads((OPERATOR / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["green-operator"] == "green_operator.cli.main:main"
    objs = render()
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cmd == ["--config", "/etc/green-operator/config.yaml"]
    assert f"--config={cmd[1]}" in args


def test_the_traces_of_the_default_configuration_are_copied_in() -> None:
    assert f"data/carbon {IMAGE_TRACES}" in _final("COPY")
    config = operator_config(render())
    for provider in config["providers"].values():
        for path in provider["files"].values():
            assert Path(path).parent == Path(IMAGE_TRACES)
            assert (REPO / "data" / "carbon" / Path(path).name).is_file()


def test_the_exposed_ports_are_the_charts_defaults() -> None:
    values = yaml.safe_load((REPO / "charts" / "green-training-operator" / "values.yaml").read_text())
    assert _final("EXPOSE") == [f"{values['metrics']['port']} {values['health']['port']}"]


def test_the_build_context_sends_every_copied_path_and_nothing_else() -> None:
    rules = [line.strip() for line in IGNORE.splitlines() if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "allow-list: ignore everything, then re-include what the image needs"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    sources = {rest.split()[0] for key, rest in _instructions() if key == "COPY" and not rest.startswith("--from")}
    assert sources == {"operator/pyproject.toml", "operator/src", "data/carbon"}
    assert sources <= allowed
    assert {"**/__pycache__", "**/*.egg-info"} <= set(rules)


def test_the_local_operators_run_with_the_images_environment() -> None:
    env = {}
    for rest in _final("ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert {k: env.get(k) for k in IMAGE_ENV} == IMAGE_ENV
    # `make demo` starts its operator from a shell script, with the same environment.
    demo = (REPO / "hack" / "demo.sh").read_text()
    start = next(line for line in demo.splitlines() if "green_operator.cli run" in line)
    assert dict(re.findall(r"(\w+)=(\S+) ", start.split("setsid")[0])) == IMAGE_ENV
