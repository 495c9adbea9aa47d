"""The controller: a pure decision core (`reconcile`) driven by front-ends, an executor that applies
its actions, and the capacity ledger that every job's decision reads.

Pure (no Kubernetes client, no HTTP, no kopf): `observed`, `actions`, `transitions`, `reconcile`,
`ledger`. I/O: `kube`, `executor`, `driver`, `watches`, `handlers`.
"""
