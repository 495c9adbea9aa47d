#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its figures. The operator burst needs the local cluster.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
PY="$repo/.venv/bin/python"
cd "$repo"
echo "== planner speed";              "$PY" benchmarks/planner_speed.py
echo "== planner quality";            "$PY" benchmarks/planner_quality.py
echo "== carbon providers";           "$PY" benchmarks/carbon_providers.py
echo "== trainer overhead (CPU)";     "$PY" benchmarks/trainer_overhead.py
echo "== node agent (8 fake GPUs, 16 pods)"; "$PY" benchmarks/node_agent.py
echo "== MultiKueue dispatch: Kueue's all-at-once vs the carbon planner (simulated, GB/DE/FR)"
"$PY" benchmarks/multicluster_dispatch.py
echo "== multi-cluster stack (its own manager + 2 workers)"; "$PY" benchmarks/multicluster_stack.py
echo "== MultiKueue dispatch latency (200 Jobs through the operator on the local stack)"
"$PY" benchmarks/multikueue_dispatch_latency.py
"$here/cluster.sh" up
echo "== operator burst (1,000 GreenTrainingJobs)"
KUBECONFIG="$("$here/cluster.sh" env | sed 's/^export KUBECONFIG=//')" "$PY" benchmarks/operator_burst.py
echo "== Kueue admission (1,000 Kueue-managed Jobs, with and without the carbon check)"
KUBECONFIG="$("$here/cluster.sh" env | sed 's/^export KUBECONFIG=//')" "$PY" benchmarks/kueue_admission.py
