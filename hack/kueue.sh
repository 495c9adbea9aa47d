#!/usr/bin/env bash
# Real Kueue (v0.17.0) and JobSet (v0.11.1) beside the local control plane, as local processes.
#
#   hack/kueue.sh up       build if needed (cached), install CRDs, start both, register webhooks
#   hack/kueue.sh down     unregister the webhooks, then stop both (by pid)
#   hack/kueue.sh restart  stop and start the Kueue manager only (its webhooks stay registered)
#   hack/kueue.sh status   say what runs
#
# Needs the cluster from hack/cluster.sh (same GREEN_STATE). Only namespaces labelled
# greentraining.io/kueue=enabled are managed by Kueue and go through its webhooks (and JobSet's),
# so the rest of the cluster never depends on these processes. State: $GREEN_STATE/kueue/.
#
# Options (environment), for a MultiKueue manager (hack/multicluster.sh); unset, nothing changes:
#   GREEN_KUEUE_MULTIKUEUE_DISPATCHER=<name>  add `multiKueue: {dispatcherName: <name>, origin: multikueue}`
#                                             to Kueue's configuration (an external dispatcher nominates)
#   GREEN_KUEUE_WORKER_LOST_TIMEOUT=<dur>     with it, multiKueue.workerLostTimeout (Kueue's default: 15m)
#   GREEN_KUEUE_JOBSET_CONTROLLER=0           install JobSet's CRDs but run neither its controller nor its
#                                             webhooks (a MultiKueue manager copies JobSets to workers)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=hack/env.sh
source "$here/env.sh"

BIN="$(controlplane_bin_dir)"
KBIN="$(kueue_bin_dir)"
ST="$GREEN_STATE/kueue"
PKI="$GREEN_STATE/pki"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
NS_LABEL="greentraining.io/kueue"
UP_TIMEOUT="${GREEN_UP_TIMEOUT:-90}"
MK_DISPATCHER="${GREEN_KUEUE_MULTIKUEUE_DISPATCHER:-}"
MK_LOST_TIMEOUT="${GREEN_KUEUE_WORKER_LOST_TIMEOUT:-}"
JOBSET_CONTROLLER="${GREEN_KUEUE_JOBSET_CONTROLLER:-1}"
KUEUE_HOOKS=(mjob.kb.io vjob.kb.io mjobset.kb.io vjobset.kb.io mworkload.kb.io vworkload.kb.io
  mclusterqueue.kb.io vclusterqueue.kb.io mresourceflavor.kb.io vresourceflavor.kb.io vcohort.kb.io)
JOBSET_HOOKS=(mjobset.kb.io vjobset.kb.io mpod.kb.io vpod.kb.io)

log() { echo "kueue: $*" >&2; }
die() { echo "kueue: error: $*" >&2; exit 1; }
kubectl_admin() { "$BIN/kubectl" --kubeconfig "$GREEN_KUBECONFIG" "$@"; }

pid_of() { # pid of a running process we started (stale pid files removed)
  local f="$ST/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$KBIN/$1"; then
    echo "$pid"
  else
    rm -f "$f"
  fi
}

stop() { # stop <name>: SIGTERM, then SIGKILL after 15 s
  local pid deadline
  pid="$(pid_of "$1")"
  rm -f "$ST/$1.pid"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # wait_for <description> <process name> <command...>
  local what="$1" name="$2"; shift 2
  local deadline=$((SECONDS + UP_TIMEOUT))
  local pid
  pid="$(cat "$ST/$name.pid" 2>/dev/null || true)"
  until "$@" >/dev/null 2>&1; do
    # By the recorded pid, not pid_of: until setsid/unshare have exec'd, the child's command line
    # is still this script's, and pid_of would take a starting process for a dead one.
    if ! alive "$pid"; then
      sleep 0.5 # let its last words reach the log
      tail -n 25 "$ST/$name.log" >&2 || true
      die "$name exited while starting (log: $ST/$name.log)"
    fi
    ((SECONDS < deadline)) || die "timed out after ${UP_TIMEOUT}s waiting for $what (log: $ST/$name.log)"
    sleep 0.2
  done
}

gen_certs() { # serving certificates for 127.0.0.1, signed by the cluster's CA (the caBundle)
  [[ -f "$ST/certs/tls.crt" ]] && return 0
  mkdir -p "$ST/certs"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$ST/certs/ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$ST/certs/tls.key" -out "$ST/certs/tls.csr" \
    -subj "/CN=kueue-local" 2>/dev/null
  openssl x509 -req -in "$ST/certs/tls.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -out "$ST/certs/tls.crt" -extfile "$ST/certs/ext" 2>/dev/null
  rm -f "$ST/certs/tls.csr"
  # Kueue reads its metrics certificates from a hard-coded /etc/kueue/metrics/certs when internal
  # cert management is off: it sees them through an overlay on /etc in its own mount namespace.
  mkdir -p "$ST/etc-upper/kueue/metrics/certs" "$ST/etc-work"
  cp "$ST/certs/tls.crt" "$ST/certs/tls.key" "$ST/etc-upper/kueue/metrics/certs/"
}

write_configs() {
  cat >"$ST/kueue-config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health:
  healthProbeBindAddress: 127.0.0.1:$KUEUE_HEALTH_PORT
metrics:
  bindAddress: 127.0.0.1:$KUEUE_METRICS_PORT
webhook:
  host: 127.0.0.1
  port: $KUEUE_WEBHOOK_PORT
  certDir: $ST/certs
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
clientConnection:
  qps: 500
  burst: 1000
manageJobsWithoutQueueName: false
managedJobsNamespaceSelector:
  matchLabels:
    $NS_LABEL: enabled
integrations:
  frameworks: [batch/job, jobset.x-k8s.io/jobset]
EOF
  if [[ -n "$MK_DISPATCHER" ]]; then
    {
      echo "multiKueue:"
      echo "  dispatcherName: $MK_DISPATCHER"
      echo "  origin: multikueue"
      if [[ -n "$MK_LOST_TIMEOUT" ]]; then echo "  workerLostTimeout: $MK_LOST_TIMEOUT"; fi
    } >>"$ST/kueue-config.yaml"
  elif [[ -n "$MK_LOST_TIMEOUT" ]]; then
    die "GREEN_KUEUE_WORKER_LOST_TIMEOUT needs GREEN_KUEUE_MULTIKUEUE_DISPATCHER (the multiKueue block)"
  fi
  cat >"$ST/jobset-config.yaml" <<EOF
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
health:
  healthProbeBindAddress: 127.0.0.1:$JOBSET_HEALTH_PORT
metrics:
  bindAddress: 127.0.0.1:$JOBSET_METRICS_PORT
webhook:
  host: 127.0.0.1
  port: $JOBSET_WEBHOOK_PORT
  certDir: $ST/certs
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
clientConnection:
  qps: 500
  burst: 1000
EOF
}

start_kueue() {
  [[ -n "$(pid_of kueue)" ]] && return 0
  # unshare without --fork execs: the pid recorded is Kueue's own.
  setsid unshare -m --propagation private sh -c \
    "mount -t overlay overlay -o lowerdir=/etc,upperdir=$ST/etc-upper,workdir=$ST/etc-work /etc && exec $KBIN/kueue -config $ST/kueue-config.yaml -kubeconfig $GREEN_KUBECONFIG -feature-gates VisibilityOnDemand=false" \
    >>"$ST/kueue.log" 2>&1 </dev/null &
  echo $! >"$ST/kueue.pid"
  wait_for "Kueue's /readyz" kueue curl -sf "http://127.0.0.1:$KUEUE_HEALTH_PORT/readyz"
}

start_jobset() {
  [[ -n "$(pid_of jobset)" ]] && return 0
  setsid "$KBIN/jobset" --config "$ST/jobset-config.yaml" --kubeconfig "$GREEN_KUBECONFIG" \
    >>"$ST/jobset.log" 2>&1 </dev/null &
  echo $! >"$ST/jobset.pid"
  wait_for "JobSet's /readyz" jobset curl -sf "http://127.0.0.1:$JOBSET_HEALTH_PORT/readyz"
}

register_webhooks() {
  "$PYTHON" "$here/kueue/webhooks.py" "$KBIN/kueue-config/webhooks.yaml" green-kueue "$KUEUE_WEBHOOK_PORT" \
    "$PKI/ca.crt" "$NS_LABEL" "${KUEUE_HOOKS[@]}" | kubectl_admin apply --server-side --force-conflicts -f - >/dev/null
  [[ "$JOBSET_CONTROLLER" == 1 ]] || return 0
  "$PYTHON" "$here/kueue/webhooks.py" "$KBIN/jobset-config/webhooks.yaml" green-jobset "$JOBSET_WEBHOOK_PORT" \
    "$PKI/ca.crt" "$NS_LABEL" "${JOBSET_HOOKS[@]}" | kubectl_admin apply --server-side --force-conflicts -f - >/dev/null
}

wait_established() { # wait_established <crd>...: each CRD Established within 60 s, else die
  # Polled: `kubectl wait` fails outright ("accessor error") if it runs before a new CRD has any status.
  local crd deadline=$((SECONDS + 60))
  for crd in "$@"; do
    until [[ "$(kubectl_admin get crd "$crd" \
                -o "jsonpath={.status.conditions[?(@.type=='Established')].status}" 2>/dev/null)" == True ]]; do
      ((SECONDS < deadline)) || die "CRD $crd not Established after 60s"
      sleep 0.2
    done
  done
}

cmd_up() {
  local t0=$SECONDS
  [[ -f "$GREEN_KUBECONFIG" && -f "$PKI/ca.key" ]] || die "no cluster at $GREEN_STATE; run 'hack/cluster.sh up' first"
  "$here/build-kueue.sh" >&2
  mkdir -p "$ST"
  # Ports are kept while the processes run (so `up` is idempotent), else picked afresh.
  if [[ -f "$ST/ports.env" && ( -n "$(pid_of kueue)" || -n "$(pid_of jobset)" ) ]]; then
    # shellcheck disable=SC1091
    source "$ST/ports.env"
  else
    KUEUE_WEBHOOK_PORT=$(free_port); KUEUE_HEALTH_PORT=$(free_port); KUEUE_METRICS_PORT=$(free_port)
    JOBSET_WEBHOOK_PORT=$(free_port); JOBSET_HEALTH_PORT=$(free_port); JOBSET_METRICS_PORT=$(free_port)
    printf '%s\n' "KUEUE_WEBHOOK_PORT=$KUEUE_WEBHOOK_PORT" "KUEUE_HEALTH_PORT=$KUEUE_HEALTH_PORT" \
      "KUEUE_METRICS_PORT=$KUEUE_METRICS_PORT" "JOBSET_WEBHOOK_PORT=$JOBSET_WEBHOOK_PORT" \
      "JOBSET_HEALTH_PORT=$JOBSET_HEALTH_PORT" "JOBSET_METRICS_PORT=$JOBSET_METRICS_PORT" >"$ST/ports.env"
  fi
  gen_certs
  write_configs
  kubectl_admin apply --server-side --force-conflicts -f "$KBIN/kueue-config/crd" -f "$KBIN/jobset-config/crd" >/dev/null
  wait_established workloads.kueue.x-k8s.io clusterqueues.kueue.x-k8s.io jobsets.jobset.x-k8s.io
  kubectl_admin create namespace kueue-system --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
  case "$JOBSET_CONTROLLER" in
    1) start_jobset ;;
    0) stop jobset ;;
    *) die "GREEN_KUEUE_JOBSET_CONTROLLER must be 0 or 1, not '$JOBSET_CONTROLLER'" ;;
  esac
  start_kueue
  register_webhooks
  log "up in $((SECONDS - t0))s (Kueue webhooks on 127.0.0.1:$KUEUE_WEBHOOK_PORT; label namespaces $NS_LABEL=enabled)"
}

cmd_down() {
  if [[ -f "$GREEN_KUBECONFIG" ]]; then
    kubectl_admin delete mutatingwebhookconfiguration green-kueue-mutating green-jobset-mutating \
      --ignore-not-found --timeout=20s >/dev/null 2>&1 || true
    kubectl_admin delete validatingwebhookconfiguration green-kueue-validating green-jobset-validating \
      --ignore-not-found --timeout=20s >/dev/null 2>&1 || true
  fi
  stop kueue
  stop jobset
  log "down"
}

cmd_restart() { # the Kueue manager only: its state is in the API server
  # shellcheck disable=SC1091
  source "$ST/ports.env"
  stop kueue
  start_kueue
  log "restarted"
}

cmd_status() {
  local name pid
  for name in kueue jobset; do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then printf "%-8s running (pid %s)\n" "$name" "$pid"; else printf "%-8s stopped\n" "$name"; fi
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  restart) cmd_restart ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|restart|status" >&2; exit 2 ;;
esac
