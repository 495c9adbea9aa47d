"""Turn hack/cluster/nodes.yaml into kwok-managed Node manifests (a YAML stream on stdout)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def build_node(region: dict[str, Any], index: int) -> dict[str, Any]:
    zones = region["zones"]
    zone = zones[index % len(zones)]
    name = f"gpu-{region['name']}-{index}"
    gpus = str(region["gpusPerNode"])
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            # kwok manages only nodes carrying this annotation.
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
                "topology.kubernetes.io/region": region["name"],
                "topology.kubernetes.io/zone": zone,
                "nvidia.com/gpu.product": region["gpuProduct"],
                "nvidia.com/gpu.count": gpus,
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": gpus},
            "capacity": {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": gpus},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake"},
        },
    }


def main(path: str) -> None:
    spec = yaml.safe_load(Path(path).read_text())
    docs = [build_node(r, i) for r in spec["regions"] for i in range(int(r["nodes"]))]
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("nodes.yaml")))
