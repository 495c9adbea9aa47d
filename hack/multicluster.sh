#!/usr/bin/env bash
# A local MultiKueue stack: a manager cluster and worker clusters (one region of simulated GPU nodes
# each), every one a full local control plane (hack/cluster.sh) with its own Kueue (hack/kueue.sh).
#
#   hack/multicluster.sh up       start the clusters (in parallel), configure MultiKueue, wait until Active
#   hack/multicluster.sh down     stop every process of every cluster, by recorded pid (also after a failed up)
#   hack/multicluster.sh status   what runs, memory (RSS) per cluster and in total, the last start time
#   hack/multicluster.sh env      print the shell variables of the stack (cluster kubeconfigs)
#
# Environment:
#   GREEN_MULTICLUSTER              parent directory of the clusters' states (default $GREEN_CACHE/multicluster)
#   GREEN_MC_WORKERS                worker clusters and their regions from hack/cluster/nodes.yaml
#                                   (default "worker-a=europe-west3 worker-b=europe-west9": DE and FR grids)
#   GREEN_MC_DISPATCHER             the manager Kueue's multiKueue.dispatcherName
#                                   (default greentraining.io/carbon-dispatcher: only it nominates workers)
#   GREEN_MC_WORKER_LOST_TIMEOUT    multiKueue.workerLostTimeout (default 30s; Kueue's own is 15m)
#   GREEN_MC_NAMESPACE, GREEN_MC_QUEUE  the namespace and LocalQueue created in every cluster
#                                   (default green-jobs / green)
#
# Files under $GREEN_MULTICLUSTER: stack.json (names, regions, kubeconfig paths, queue names),
# kubeconfigs/<worker>.kubeconfig (credentials inline, for the operator), <cluster>/ (a GREEN_STATE).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=hack/env.sh
source "$here/env.sh"

ROOT="${GREEN_MULTICLUSTER:-$GREEN_CACHE/multicluster}"
WORKERS="${GREEN_MC_WORKERS:-worker-a=europe-west3 worker-b=europe-west9}"
DISPATCHER="${GREEN_MC_DISPATCHER:-greentraining.io/carbon-dispatcher}"
LOST_TIMEOUT="${GREEN_MC_WORKER_LOST_TIMEOUT:-30s}"
NAMESPACE="${GREEN_MC_NAMESPACE:-green-jobs}"
QUEUE="${GREEN_MC_QUEUE:-green}"
BIN="$(controlplane_bin_dir)"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
UP_TIMEOUT="${GREEN_UP_TIMEOUT:-90}"

log() { echo "multicluster: $*" >&2; }
die() { echo "multicluster: error: $*" >&2; exit 1; }

clusters() { # the clusters that have (or had) a state directory: manager first
  local d
  [[ -d "$ROOT/manager" ]] && echo manager
  for d in "$ROOT"/*/; do
    d="$(basename "$d")"
    [[ "$d" == manager || "$d" == kubeconfigs ]] && continue
    [[ -f "$ROOT/$d/nodes.yaml" ]] && echo "$d"
  done
  return 0
}

in_cluster() { # in_cluster <name> <command...>: run with that cluster's GREEN_STATE
  local name="$1"; shift
  GREEN_STATE="$ROOT/$name" GREEN_KUBECONFIG="$ROOT/$name/kubeconfig" GREEN_NODES_FILE="$ROOT/$name/nodes.yaml" "$@"
}

kubectl_in() { local name="$1"; shift; "$BIN/kubectl" --kubeconfig "$ROOT/$name/kubeconfig" "$@"; }

start_cluster() { # start_cluster <name>: control plane, then Kueue (the manager's as MultiKueue manager)
  local name="$1" st="$ROOT/$1"
  local -a vars
  mapfile -t vars <"$st/ports.in"
  vars+=(GREEN_STATE="$st" GREEN_KUBECONFIG="$st/kubeconfig" GREEN_NODES_FILE="$st/nodes.yaml")
  if [[ "$name" == manager ]]; then
    # MultiKueue copies JobSets to the workers (their managedBy is MultiKueue's): the manager needs
    # JobSet's CRDs but not its controller.
    vars+=(GREEN_KUEUE_MULTIKUEUE_DISPATCHER="$DISPATCHER" GREEN_KUEUE_WORKER_LOST_TIMEOUT="$LOST_TIMEOUT"
      GREEN_KUEUE_JOBSET_CONTROLLER=0)
  else
    vars+=(GREEN_KUEUE_MULTIKUEUE_DISPATCHER= GREEN_KUEUE_WORKER_LOST_TIMEOUT= GREEN_KUEUE_JOBSET_CONTROLLER=1)
  fi
  env "${vars[@]}" "$here/cluster.sh" up && env "${vars[@]}" "$here/kueue.sh" up
}

wait_condition() { # wait_condition <cluster> <kind> <condition>: every object of the kind has it True
  kubectl_in "$1" wait --for="condition=$3" --timeout="${UP_TIMEOUT}s" "$2" --all >/dev/null ||
    die "$2 in $1 not $3 after ${UP_TIMEOUT}s: $(kubectl_in "$1" get "$2" -o yaml | grep -A3 'type: '"$3" | tr '\n' ' ')"
}

cmd_up() {
  local t0 name pid failed=() pids=()
  t0="$(date +%s.%N)"
  [[ -x "$PYTHON" ]] || die "python not found at $PYTHON; run 'make setup'"
  if [[ -f "$ROOT/stack.json" && -f "$ROOT/up.seconds" ]] && cmd_healthy; then
    log "already up (stack: $ROOT/stack.json)"
    return 0
  fi
  if [[ -n "$(clusters)" ]]; then
    log "found a partial stack in $ROOT; stopping it first"
    cmd_down
  fi
  rm -f "$ROOT/up.seconds"
  # shellcheck disable=SC2086
  "$PYTHON" "$here/multicluster/stack.py" plan "$ROOT" "$DISPATCHER" "$LOST_TIMEOUT" "$NAMESPACE" "$QUEUE" $WORKERS ||
    exit 1
  "$here/build-kueue.sh" >&2 # once, before the parallel starts (each kueue.sh would run it)
  local -a names
  mapfile -t names < <(clusters)
  for name in "${names[@]}"; do
    start_cluster "$name" >"$ROOT/$name/up.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!names[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
  done
  if ((${#failed[@]})); then
    for name in "${failed[@]}"; do
      echo "multicluster: $name failed to start; last lines of $ROOT/$name/up.log:" >&2
      tail -n 15 "$ROOT/$name/up.log" >&2
    done
    cmd_down
    exit 1
  fi
  "$PYTHON" "$here/multicluster/stack.py" objects "$ROOT" || { cmd_down; exit 1; }
  for name in "${names[@]}"; do
    kubectl_in "$name" apply --server-side -f "$ROOT/$name/objects.yaml" >/dev/null ||
      { cmd_down; die "could not apply the Kueue objects of $name ($ROOT/$name/objects.yaml)"; }
  done
  wait_condition manager multikueueclusters.kueue.x-k8s.io Active
  wait_condition manager admissionchecks.kueue.x-k8s.io Active
  wait_condition manager clusterqueues.kueue.x-k8s.io Active
  for name in "${names[@]}"; do [[ "$name" == manager ]] || wait_condition "$name" clusterqueues.kueue.x-k8s.io Active; done
  "$PYTHON" -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$t0" >"$ROOT/up.seconds"
  log "up in $(cat "$ROOT/up.seconds")s: ${names[*]}; stack: $ROOT/stack.json"
  log "manager: export KUBECONFIG=$ROOT/manager/kubeconfig"
}

cmd_healthy() { # every cluster answers and every MultiKueueCluster is Active
  local name
  for name in $(clusters); do
    kubectl_in "$name" get --raw /readyz >/dev/null 2>&1 || return 1
    [[ "$(in_cluster "$name" "$here/kueue.sh" status 2>/dev/null)" == *"kueue    running"* ]] || return 1
  done
  [[ "$(kubectl_in manager get multikueueclusters.kueue.x-k8s.io \
        -o jsonpath='{.items[*].status.conditions[?(@.type=="Active")].status}' 2>/dev/null)" != *False* ]]
}

cmd_down() {
  local name pids=()
  # In parallel: each cluster stops its Kueue, then its control plane, one process at a time.
  for name in $(clusters); do
    in_cluster "$name" "$here/cluster.sh" down >>"$ROOT/$name/down.log" 2>&1 &
    pids+=($!)
  done
  local rc=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  rm -rf "$ROOT/kubeconfigs" "$ROOT/stack.json" "$ROOT/up.seconds"
  ((rc == 0)) || die "a cluster did not stop cleanly (see $ROOT/*/down.log)"
  log "down (logs kept in $ROOT/<cluster>/logs and kueue/)"
}

rss_kib() { # rss_kib <pid>: resident memory in KiB, 0 when gone
  awk '/^VmRSS:/ {print $2; found=1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}

cmd_status() {
  local name f pid sum total=0 proc
  [[ -n "$(clusters)" ]] || { echo "no stack in $ROOT"; return 0; }
  for name in $(clusters); do
    sum=0
    echo "$name:"
    for f in "$ROOT/$name"/pids/*.pid "$ROOT/$name"/kueue/*.pid; do
      [[ -f "$f" ]] || continue
      pid="$(cat "$f")"
      proc="$(basename "$f" .pid)"
      if alive "$pid"; then
        printf "  %-24s running (pid %s, %d MiB)\n" "$proc" "$pid" $(($(rss_kib "$pid") / 1024))
        sum=$((sum + $(rss_kib "$pid")))
      else
        printf "  %-24s stopped\n" "$proc"
      fi
    done
    printf "  %-24s %d MiB\n" "RSS" $((sum / 1024))
    total=$((total + sum))
  done
  printf "total RSS: %d MiB\n" $((total / 1024))
  if [[ -f "$ROOT/up.seconds" ]]; then echo "last up took: $(cat "$ROOT/up.seconds")s"; fi
  if [[ -f "$ROOT/stack.json" ]]; then echo "stack: $ROOT/stack.json"; fi
}

cmd_env() {
  local name
  echo "export GREEN_MULTICLUSTER=$ROOT"
  for name in $(clusters); do
    echo "export KUBECONFIG_$(echo "$name" | tr 'a-z-' 'A-Z_')=$ROOT/$name/kubeconfig"
  done
  echo "export KUBECONFIG=$ROOT/manager/kubeconfig"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
