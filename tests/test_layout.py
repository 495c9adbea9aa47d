"""The layout shows the architecture and stays that way: tests mirror the operator's packages, the
benchmarks and the harness never import from tests, and only the harness starts the operator."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from harness.cluster import REPO

PACKAGE = REPO / "operator" / "src" / "green_operator"
OPERATOR_COMMAND = re.compile(r'"green_operator\.cli\.main", "run"|"green-operator"\), "run"')
"""The ways a Python file could start the operator: `python -m green_operator.cli.main run`, the entry point."""


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_operator_package_has_its_mirrored_test_folder() -> None:
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert {"api", "controller", "planner", "carbon", "accounting", "cli", "simulate", "reporting"} <= set(packages)
    missing = [name for name in packages if not any((REPO / "tests" / "operator" / name).glob("test_*.py"))]
    assert missing == [], f"packages without tests/operator/<package>/test_*.py: {missing}"


def test_no_test_module_sits_at_the_top_of_tests_operator_for_a_module_inside_a_package() -> None:
    tops = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    strays = [
        p.name for p in (REPO / "tests" / "operator").glob("test_*.py") if p.stem.removeprefix("test_") not in tops
    ]
    assert strays == [], f"move these next to their package's tests: {strays}"


def test_benchmarks_and_the_harness_do_not_import_from_tests() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for folder in ("benchmarks", "harness")
        for path in sorted((REPO / folder).rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module == "tests" or module.startswith("tests.")
    ]
    assert offenders == []


def test_only_the_harness_starts_the_operator_process() -> None:
    starters = [
        str(path.relative_to(REPO))
        for folder in ("tests", "benchmarks", "harness")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "test_layout.py" and OPERATOR_COMMAND.search(path.read_text())
    ]
    assert starters == ["harness/operator.py"]
