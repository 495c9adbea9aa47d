"""The GreenTrainingJob status as the apiserver checks it: the CRD's openAPIV3Schema for `status`,
read with a JSON Schema validator (jsonschema). OpenAPI's `nullable` becomes a "null" type, the
structural-schema keywords (x-kubernetes-*) are left out, date-time formats are checked, and numbers
must be finite (NaN and infinities are not JSON: the apiserver refuses the whole patch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema
import yaml

from green_operator.times import parse_rfc3339
from harness.cluster import REPO

CRD = REPO / "crds" / "greentraining.io_greentrainingjobs.yaml"


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


_formats = jsonschema.FormatChecker(formats=())


@_formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or parse_rfc3339(value) is not None


@cache
def _validator() -> jsonschema.protocols.Validator:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = _json_schema(version["schema"]["openAPIV3Schema"]["properties"]["status"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema, format_checker=_formats)


def _non_finite(node: Any, path: str = "status") -> list[str]:
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path}: {node} is not a JSON number"]
    if isinstance(node, Mapping):
        return [e for k, v in node.items() for e in _non_finite(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in _non_finite(v, f"{path}[{i}]")]
    return []


def status_errors(status: Mapping[str, Any]) -> list[str]:
    """Why the apiserver would refuse this status; empty when it validates."""
    errors = [f"status.{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(status)]
    return errors + _non_finite(status)
