"""Derive the structural OpenAPI schema of a PodTemplateSpec for the GreenTrainingJob CRD.

Input: the kube-apiserver's own OpenAPI v3 document for core/v1 (`kubectl get --raw /openapi/v3/api/v1`)
of the pinned Kubernetes version. Output: a self-contained schema (no $ref) as JSON on stdout, the way
controller-gen embeds a PodTemplateSpec into Job-like CRDs (Kueue, Kubeflow), so `kubectl apply`
validates the pod template and `kubectl explain gtj.spec.template` works.

Descriptions are dropped below the template's first level to keep the CRD small enough for etcd and
client-side apply; list-map markers are dropped because structural schemas would need every map key
to be required or defaulted.
"""

from __future__ import annotations

import json
import sys
from typing import Any

KEEP = {
    "type",
    "format",
    "properties",
    "items",
    "additionalProperties",
    "required",
    "enum",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "description",
}

# ObjectMeta inside a template: what a pod template may set; the rest is pruned by the apiserver.
EMBEDDED_METADATA: dict[str, Any] = {
    "type": "object",
    "description": "Labels and annotations for the training pods.",
    "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


def flatten(node: dict[str, Any], schemas: dict[str, Any], depth: int, stack: tuple[str, ...]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None and "allOf" in node and len(node["allOf"]) == 1:
        ref = node["allOf"][0].get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in stack:
            raise SystemExit(f"recursive schema at {name}")
        if name == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta":
            return dict(EMBEDDED_METADATA)
        merged = {**schemas[name], **{k: v for k, v in node.items() if k not in ("$ref", "allOf")}}
        return flatten(merged, schemas, depth, (*stack, name))
    if "oneOf" in node:  # Quantity and IntOrString: a number or a string
        return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in KEEP:
            continue
        if key == "description" and depth > 1:
            continue
        if key == "properties":
            out[key] = {k: flatten(v, schemas, depth + 1, stack) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = flatten(value, schemas, depth + 1, stack)
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("format", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "type" not in out and "anyOf" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def main() -> None:
    doc = json.load(sys.stdin)
    schemas = doc["components"]["schemas"]
    schema = flatten(schemas["io.k8s.api.core.v1.PodTemplateSpec"], schemas, 0, ())
    json.dump(schema, sys.stdout, indent=None, sort_keys=True)


if __name__ == "__main__":
    main()
