#!/usr/bin/env bash
# `make demo`: bring up the local cluster, install the CRD, run the operator on real carbon traces
# (data/carbon, replayed on today's clock), apply the example jobs and print what it decided.
# The cluster and the operator keep running afterwards so you can look around; the last lines say how.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=hack/env.sh
source "$here/env.sh"
BIN="$(controlplane_bin_dir)"
export KUBECONFIG="$GREEN_KUBECONFIG"
export KUBECTL="$BIN/kubectl"
NS="${DEMO_NAMESPACE:-green-demo}"
PY="$repo/.venv/bin/python"
OP_LOG="$GREEN_STATE/logs/operator-demo.log"
OP_PID="$GREEN_STATE/pids/operator-demo.pid"

"$here/cluster.sh" up
"$KUBECTL" apply --server-side --force-conflicts -f "$repo/crds" >/dev/null
# Poll: `kubectl wait` fails outright if it runs before the new CRD has any status.
for _ in $(seq 1 120); do
  [[ "$("$KUBECTL" get crd greentrainingjobs.greentraining.io \
        -o "jsonpath={.status.conditions[?(@.type=='Established')].status}" 2>/dev/null)" == True ]] && break
  sleep 0.5
done
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null

# One operator for the demo namespace; replace a previous demo's operator.
if [[ -f "$OP_PID" ]] && kill -0 "$(cat "$OP_PID")" 2>/dev/null; then
  kill "$(cat "$OP_PID")" && sleep 1
fi
mkdir -p "$(dirname "$OP_LOG")" "$(dirname "$OP_PID")"
metrics_port="${DEMO_METRICS_PORT:-18080}"
# The environment the operator image sets (operator/Dockerfile), as the tests' harness does too.
MALLOC_ARENA_MAX=2 setsid "$PY" -m green_operator.cli run --config "$repo/examples/operator-config.yaml" --namespace "$NS" \
  --metrics-port "$metrics_port" --liveness "http://127.0.0.1:$((metrics_port + 1))/healthz" \
  >"$OP_LOG" 2>&1 </dev/null &
echo $! >"$OP_PID"
for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$((metrics_port + 1))/healthz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$OP_PID")" 2>/dev/null || { echo "demo: the operator exited; see $OP_LOG" >&2; tail -20 "$OP_LOG" >&2; exit 1; }
  sleep 0.5
done

echo
echo "Nodes by region and GPU model:"
"$KUBECTL" get nodes -L topology.kubernetes.io/region,nvidia.com/gpu.product,nvidia.com/gpu.count --sort-by=.metadata.name
echo
echo "What the operator would decide for examples/jobs/finetune-resnet.yaml (green-operator plan, creates nothing):"
"$PY" -m green_operator.cli plan -f "$repo/examples/jobs/finetune-resnet.yaml" --config "$repo/examples/operator-config.yaml" \
  --kubeconfig "$KUBECONFIG" | sed 's/^/  /'
echo
"$KUBECTL" delete greentrainingjobs --all -n "$NS" --wait=true >/dev/null 2>&1 || true
"$KUBECTL" apply -n "$NS" -f "$repo/examples/jobs/"
"$PY" - "$NS" <<'EOF'
import subprocess, sys, time, json, os
ns = sys.argv[1]
kubectl = [os.environ["KUBECTL"], "--kubeconfig", os.environ["KUBECONFIG"]]
deadline = time.monotonic() + 60
while True:
    items = json.loads(subprocess.check_output([*kubectl, "get", "gtj", "-n", ns, "-o", "json"]))["items"]
    if items and all((i.get("status") or {}).get("phase") not in (None, "Pending") for i in items):
        break
    if time.monotonic() > deadline:
        sys.exit("demo: the operator took no decision within 60 s; see the operator log")
    time.sleep(0.5)
print()
print(f"{'JOB':18} {'PHASE':10} {'REGION':13} {'PLANNED START (UTC)':21} {'FORECAST':>9} {'RUN NOW':>9}  POWER")
for i in sorted(items, key=lambda i: i["metadata"]["name"]):
    st, plan = i["status"], i["status"].get("plan") or {}
    limit = (st.get("power") or {}).get("gpuPowerLimitWatts")
    print(f"{i['metadata']['name']:18} {st['phase']:10} {st['region']:13} {st['plannedStart'].replace('T', ' ')[:19]:21} "
          f"{plan.get('intensityForecast', 0):7.0f} g {plan.get('baselineIntensity', 0):7.0f} g  "
          f"{str(limit) + ' W' if limit else 'default'}")
print("\n(forecast = gCO2eq/kWh expected over the planned run; run now = the carbon-blind baseline in "
      "the first allowed region)")
EOF
echo
echo "Decisions, in plain words (Events):"
"$KUBECTL" get events -n "$NS" --field-selector involvedObject.kind=GreenTrainingJob \
  -o custom-columns=JOB:.involvedObject.name,REASON:.reason,MESSAGE:.message --sort-by=.lastTimestamp | cut -c1-200
cat <<EOF

The cluster and the operator keep running. Look around:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get gtj -n $NS -o wide          # phase, region, start, energy, CO2, saved
  $KUBECTL describe gtj finetune-resnet -n $NS
  $KUBECTL get jobs,pods -n $NS -o wide     # the child Jobs (suspended until their window)
  $KUBECTL explain gtj.spec.schedule
  curl -s http://127.0.0.1:$metrics_port/metrics | grep ^greentraining_
  $PY -m green_operator.cli report -n $NS --config $repo/examples/operator-config.yaml --output /tmp/green-report.png
  operator log: $OP_LOG
Stop everything with: make cluster-down
EOF
