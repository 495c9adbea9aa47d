"""Renders Kueue's or JobSet's webhook manifests for controllers that run as local processes.

    webhooks.py <manifests.yaml> <prefix> <port> <ca.crt> <namespace label> <keep...>

Each kept webhook (by name, e.g. mjob.kb.io) is served at https://127.0.0.1:<port><path> with the CA
as caBundle, as controller-runtime's envtest registers them. Every webhook gets a namespaceSelector on
`<namespace label>=enabled`: only namespaces labelled for the Kueue tier go through these webhooks,
so a stopped Kueue never blocks Jobs or pods elsewhere on the cluster (its Job webhook is
`failurePolicy: Fail`). Cluster-scoped objects (ClusterQueue, ResourceFlavor) ignore the selector.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import yaml


def render(docs: list[dict[str, Any]], prefix: str, port: int, ca: bytes, label: str, keep: set[str]) -> list[Any]:
    bundle = base64.b64encode(ca).decode()
    out = []
    for doc in docs:
        kind = doc["kind"]
        hooks = []
        for hook in doc.get("webhooks") or []:
            if hook["name"] not in keep:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle}
            hook["namespaceSelector"] = {"matchLabels": {label: "enabled"}}
            hook["timeoutSeconds"] = 10
            hooks.append(hook)
        short = "mutating" if kind.startswith("Mutating") else "validating"
        out.append({**doc, "metadata": {"name": f"{prefix}-{short}"}, "webhooks": hooks})
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 7:
        print(__doc__, file=sys.stderr)
        return 2
    manifests, prefix, port, ca, label, *keep = argv[1:]
    docs = [d for d in yaml.safe_load_all(Path(manifests).read_text()) if d]
    rendered = render(docs, prefix, int(port), Path(ca).read_bytes(), label, set(keep))
    sys.stdout.write(yaml.safe_dump_all(rendered, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
