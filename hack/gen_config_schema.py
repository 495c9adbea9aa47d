"""Generate the `config` part of the chart's values.schema.json from the configuration's pydantic models.

`providers` (each registered provider type's schema, chosen by `type`), `carbon` (the carbon
service's settings) and each region's `carbon` block come from green_operator.carbon; the rest of
the chart's schema is left as it is. `make config-schema` (and `make crd`) writes it;
`hack/verify.py` fails when the file differs from what this prints.

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
sys.path.insert(0, str(ROOT / "operator" / "src"))


def generate(current: str) -> str:
    from green_operator.carbon.config import CarbonSettingsSchema, RegionCarbonSchema, providers_schema, schema_of

    doc: dict[str, Any] = json.loads(current)
    config = doc["properties"]["config"]["properties"]
    config["providers"] = providers_schema()
    config["carbon"] = {**schema_of(CarbonSettingsSchema), "description": "cache and retry settings"}
    config["regions"]["items"]["properties"]["carbon"] = schema_of(RegionCarbonSchema)
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
