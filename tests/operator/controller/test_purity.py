"""The decision core stays pure: importing it pulls in no Kubernetes client, kopf or HTTP library,
directly or through anything it imports. Checked in a fresh interpreter (this one has them loaded)."""

from __future__ import annotations

import json
import subprocess
import sys

PURE = (
    "green_operator.controller.observed",
    "green_operator.controller.actions",
    "green_operator.controller.transitions",
    "green_operator.controller.reconcile",
    "green_operator.controller.ledger",
    "green_operator.planner",
    "green_operator.controller.released",
    "green_operator.controller.segmented",
    "green_operator.controller.child",
    "green_operator.planner.segments",
    "green_operator.planner.joint",
    "green_operator.planner.extrapolate",
    "green_operator.controller.forecast_error",
    "green_operator.controller.joint",
    "green_operator.api.interruption",
    "green_operator.accounting.segments",
    "green_operator.controller.memory",
    "green_operator.controller.lease",
    "green_operator.api",
    "green_operator.api.phase",
    "green_operator.api.spec",
    "green_operator.api.status",
    "green_operator.api.conditions",
    "green_operator.api.manifests",
    "green_operator.api.events",
    "green_operator.accounting.settle",
    "green_operator.accounting.live_energy",
    "green_operator.kueue.workload",
    "green_operator.kueue.inputs",
    "green_operator.kueue.admission",
    "green_operator.kueue.accounting",
    "green_operator.kueue.multikueue",
    "green_operator.kueue.dispatch",
    "green_operator.times",
)
FORBIDDEN = ("kopf", "kubernetes", "kubernetes_asyncio", "aiohttp", "requests")

PROBE = """
import importlib, json, sys
modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for m in modules:
    importlib.import_module(m)
print(json.dumps(sorted({n for n in sys.modules if n.split(".")[0] in forbidden})))
"""


def loaded_after_importing(modules: tuple[str, ...]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_pure_modules_import_no_io_library() -> None:
    assert loaded_after_importing(PURE) == []


def test_the_probe_sees_an_io_library_when_one_is_imported() -> None:
    # The check itself works: the executor talks to the API, and the probe notices.
    assert "kubernetes_asyncio" in {
        m.split(".")[0] for m in loaded_after_importing(("green_operator.controller.kube",))
    }
