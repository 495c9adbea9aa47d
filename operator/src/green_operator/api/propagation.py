"""Which of a GreenTrainingJob's labels and annotations reach its child Job and the Job's pods. Pure.

Everything passes except keys that belong to someone else's machinery (docs/design/distributed-training.md):
- ours: the `greentraining.io` domain (and its subdomains; kopf keeps its progress there) and
  `app.kubernetes.io/managed-by`, which the operator sets itself;
- `kubectl.kubernetes.io/*`: kubectl's bookkeeping (last-applied-configuration would copy the whole
  spec onto every pod);
- `kueue.x-k8s.io/*`: a queue-name label on the child would make Kueue suspend and admit it while the
  operator suspends and releases it (a fight over `spec.suspend`); Kueue workloads take the Kueue path.
  Pod-level Kueue labels (pod groups) would gate the pods the same way;
- the Job controller's own pod labels (`batch.kubernetes.io/*`, `controller-uid`, `job-name`), which
  must match the selector it generates.
"""

from __future__ import annotations

from collections.abc import Mapping

from .manifests import GROUP, LABEL_MANAGED_BY

_EXCLUDED_DOMAINS = (GROUP, "kopf.zalando.org", "kubectl.kubernetes.io", "kueue.x-k8s.io", "batch.kubernetes.io")
_EXCLUDED_KEYS = frozenset({LABEL_MANAGED_BY, "controller-uid", "job-name"})


def excluded(key: str) -> bool:
    if key in _EXCLUDED_KEYS:
        return True
    domain = key.split("/", 1)[0] if "/" in key else ""
    return any(domain == d or domain.endswith(f".{d}") for d in _EXCLUDED_DOMAINS)


def propagated(items: Mapping[str, str] | None) -> dict[str, str]:
    """The keys of a GreenTrainingJob's labels (or annotations) that its child and pods carry."""
    return {k: str(v) for k, v in (items or {}).items() if not excluded(k)}
