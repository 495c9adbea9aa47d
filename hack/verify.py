"""Fail on drift between generated or copied files and their sources (`make lint` runs it).

- crds/ must equal what hack/crd/gen_crd.py generates from its input;
- every chart's crds/ folder must hold an identical copy of crds/;
- the chart's values.schema.json `config` part must equal what hack/gen_config_schema.py generates
  from the configuration's pydantic models.
`--fix` rewrites the chart copies and the schema instead of failing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    fix = "--fix" in argv
    problems: list[str] = []
    generated = subprocess.run(
        [sys.executable, "gen_crd.py"], cwd=ROOT / "hack" / "crd", check=True, capture_output=True, text=True
    ).stdout
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        if crd.name == "greentraining.io_greentrainingjobs.yaml" and crd.read_text() != generated:
            problems.append(f"{crd.relative_to(ROOT)} is stale: run `make crd` after editing hack/crd/")
        for chart in sorted((ROOT / "charts").glob("*/Chart.yaml")):
            copy = chart.parent / "crds" / crd.name
            if copy.exists() and copy.read_text() == crd.read_text():
                continue
            if fix:
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(crd.read_text())
                print(f"updated {copy.relative_to(ROOT)}")
            else:
                problems.append(f"{copy.relative_to(ROOT)} differs from {crd.relative_to(ROOT)}: run `make crd`")
    schema = ROOT / "charts" / "green-training-operator" / "values.schema.json"
    expected = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "gen_config_schema.py")], check=True, capture_output=True, text=True
    ).stdout
    if schema.read_text() != expected:
        if fix:
            schema.write_text(expected)
            print(f"updated {schema.relative_to(ROOT)}")
        else:
            problems.append(f"{schema.relative_to(ROOT)} is stale: run `make config-schema`")
    for p in problems:
        print(f"verify: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
