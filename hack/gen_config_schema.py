"""Generate the `config` part of the chart's values.schema.json from the configuration's pydantic models.

`providers` (each registered provider type's schema, chosen by `type`), `carbon` (the carbon
service's settings), each region's `carbon` block, `planner`, `operator`, `prometheus` and `multiKueue` come from
the models in green_operator.carbon and green_operator.config; `global` (the values a parent chart
shares with its subcharts) is always accepted, so the chart works as a subchart under a schema that
forbids unknown keys; the rest of the chart's schema is left as it is. The chart sets
`operator.metricsPort` (from `metrics.port`) and `operator.watchNamespaces` (from `rbac`) itself, and
`kueue.enabled` (from the chart's `kueue.enabled`), and `multiKueue.enabled` and `multiKueue.workers`
(from the chart's `multiKueue`: worker kubeconfig Secrets mounted into the operator), so its schema
leaves those out.
`make config-schema` (and `make crd`) writes it; `hack/verify.py` fails when the file differs from what this prints.

    python hack/gen_config_schema.py            # print the whole values.schema.json
    python hack/gen_config_schema.py --write    # rewrite the chart's file
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "charts" / "green-training-operator" / "values.schema.json"
CHART_OWNED = ("metricsPort", "watchNamespaces")
GLOBAL = {
    "type": "object",
    "description": "Helm's global values, set by a parent chart for all its subcharts; accepted, not used",
}
sys.path.insert(0, str(ROOT / "operator" / "src"))


def generate(current: str) -> str:
    from green_operator.carbon.config import CarbonSettingsSchema, providers_schema, schema_of
    from green_operator.config import (
        KueueSchema,
        MultiKueueSchema,
        OperatorSchema,
        PlannerSchema,
        PrometheusSchema,
        RegionSchema,
    )

    doc: dict[str, Any] = json.loads(current)
    config = doc["properties"]["config"]["properties"]
    config["providers"] = providers_schema()
    config["carbon"] = {**schema_of(CarbonSettingsSchema), "description": "cache and retry settings"}
    config["regions"] = {"type": "array", "minItems": 1, "items": schema_of(RegionSchema)}
    config["planner"] = {**schema_of(PlannerSchema), "description": "the planner's knobs"}
    operator = schema_of(OperatorSchema)
    for chart_owned in CHART_OWNED:
        operator["properties"].pop(chart_owned)
    config["operator"] = {
        **operator,
        "description": "metricsPort comes from metrics.port and watchNamespaces from rbac",
    }
    config["prometheus"] = {**schema_of(PrometheusSchema), "description": "where running jobs' energy is read"}
    kueue = schema_of(KueueSchema)
    kueue["properties"].pop("enabled")
    config["kueue"] = {**kueue, "description": "the carbon AdmissionCheck's timing; enabled comes from kueue.enabled"}
    multikueue = schema_of(MultiKueueSchema)
    for chart_owned in ("enabled", "workers"):
        multikueue["properties"].pop(chart_owned)
    config["multiKueue"] = {
        **multikueue,
        "description": "the MultiKueue dispatcher's timing; enabled and workers come from multiKueue",
    }
    doc["properties"]["global"] = GLOBAL
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = generate(SCHEMA.read_text())
    if "--write" in argv:
        if SCHEMA.read_text() != text:
            SCHEMA.write_text(text)
            print(f"updated {SCHEMA.relative_to(ROOT)}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
