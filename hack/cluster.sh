#!/usr/bin/env bash
# The local control plane: etcd, kube-apiserver (TLS + RBAC), kube-controller-manager,
# kube-scheduler and the kwok controller playing the kubelet for simulated GPU nodes.
#
#   hack/cluster.sh up       start everything (idempotent), write the kubeconfig, wait until healthy
#   hack/cluster.sh down     stop every process it started, by pid, and remove the cluster state
#   hack/cluster.sh status   say what runs
#   hack/cluster.sh restart <component> [--kill]
#                            stop one component (SIGTERM, or SIGKILL with --kill) and start it again
#                            with the same flags and data, then wait until it is healthy: the
#                            integration tests restart etcd and kube-apiserver under a running operator
#   hack/cluster.sh env      print `export KUBECONFIG=...` for the shell
#
# State lives in $GREEN_STATE (default ~/.cache/green-training/cluster): pki/, data/, pids/,
# logs/ and the admin kubeconfig at $GREEN_KUBECONFIG.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=hack/env.sh
source "$here/env.sh"

BIN="$(controlplane_bin_dir)"
PKI="$GREEN_STATE/pki"
PIDS="$GREEN_STATE/pids"
LOGS="$GREEN_STATE/logs"
DATA="$GREEN_STATE/data"
PORTS="$GREEN_STATE/ports.env"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
NODES_FILE="${GREEN_NODES_FILE:-$here/cluster/nodes.yaml}"
UP_TIMEOUT="${GREEN_UP_TIMEOUT:-90}"

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# ---- processes --------------------------------------------------------------------------------

pid_of() { # prints the pid of a running component we started, or nothing (stale pid files are removed)
  local name="$1" f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$BIN/$name"; then
    echo "$pid"
  else
    # The process is gone (or the pid was reused by something else): the file is stale.
    rm -f "$f"
  fi
}

start() { # start <name> <args...>
  local name="$1"; shift
  mkdir -p "$PIDS" "$LOGS"
  printf '%s\0' "$@" >"$PIDS/$name.args" # what `restart` starts again
  setsid "$BIN/$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

stop_one() { # stop_one <name> <signal>: and wait until it is gone
  local name="$1" sig="$2" pid deadline
  pid="$(pid_of "$name")"
  [[ -n "$pid" ]] || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PIDS/$name.pid"
}

stop_all() {
  # One at a time, in reverse start order: the apiserver drains its requests while etcd is still
  # up (stopped together, it can outlive its grace period retrying a dead etcd).
  local name pid deadline
  for ((i=${#COMPONENTS[@]}-1; i>=0; i--)); do
    name="${COMPONENTS[$i]}"
    pid="$(pid_of "$name")"
    rm -f "$PIDS/$name.pid"
    [[ -n "$pid" ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then
      log "$name did not stop within 15s of SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
  done
}

# ---- ports ------------------------------------------------------------------------------------

port_free() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

pick_port() { # pick_port <name> <preferred>: the preferred port, or a free one when it is taken
  local name="$1" port="$2"
  if ! port_free "$port"; then
    local other
    other="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    log "port $port for $name is taken by another process; using $other instead"
    port="$other"
  fi
  echo "$port"
}

# ---- pki and kubeconfigs ----------------------------------------------------------------------

gen_cert() { # gen_cert <name> <CN> <O or ''> <extfile or ''>
  local name="$1" cn="$2" org="$3" ext="$4" subj="/CN=$2"
  [[ -n "$org" ]] && subj="/O=$org/CN=$cn"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" \
    -subj "$subj" 2>/dev/null
  if [[ -n "$ext" ]]; then
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
      -days 365 -out "$PKI/$name.crt" -extfile "$ext" 2>/dev/null
  else
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
      -days 365 -out "$PKI/$name.crt" 2>/dev/null
  fi
  rm -f "$PKI/$name.csr"
}

gen_pki() {
  [[ -f "$PKI/.complete" ]] && return 0
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 365 -subj "/CN=green-training-local-ca" 2>/dev/null
  cat >"$PKI/server.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  cat >"$PKI/client.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
  gen_cert apiserver kube-apiserver "" "$PKI/server.ext"
  gen_cert admin admin system:masters "$PKI/client.ext"
  gen_cert controller-manager system:kube-controller-manager "" "$PKI/client.ext"
  gen_cert scheduler system:kube-scheduler "" "$PKI/client.ext"
  # kwok plays every kubelet (nodes, leases, pod status): it runs with cluster-admin rights.
  gen_cert kwok kwok-controller system:masters "$PKI/server.ext"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  touch "$PKI/.complete"
}

write_kubeconfig() { # write_kubeconfig <file> <cert name> <api port>
  local file="$1" who="$2" port="$3"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: green-local
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $PKI/ca.crt
users:
- name: $who
  user:
    client-certificate: $PKI/$who.crt
    client-key: $PKI/$who.key
contexts:
- name: green-local
  context: {cluster: green-local, user: $who}
current-context: green-local
EOF
}

# ---- health -----------------------------------------------------------------------------------

api_get() { # api_get <path>: GET as admin, prints the body
  curl -sf --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT$1"
}

check_alive() { # a component that died while starting is a clear error, never a hang
  local name
  for name in "$@"; do
    if [[ -z "$(pid_of "$name")" ]]; then
      echo "cluster: error: $name exited while starting; last lines of $LOGS/$name.log:" >&2
      tail -n 25 "$LOGS/$name.log" >&2 || true
      stop_all
      exit 1
    fi
  done
}

wait_until() { # wait_until <description> <timeout s> <command...>, checking started components stay alive
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    check_alive "${STARTED[@]}"
    if ((SECONDS >= deadline)); then
      stop_all
      die "timed out after ${timeout}s waiting for $what (logs in $LOGS)"
    fi
    sleep 0.3
  done
}

kubectl_admin() { "$BIN/kubectl" --kubeconfig "$GREEN_KUBECONFIG" "$@"; }

nodes_ready() {
  local want have
  want="$("$PYTHON" "$here/cluster/gen_nodes.py" "$NODES_FILE" | grep -c '^kind: Node')"
  have="$(kubectl_admin get nodes --no-headers 2>/dev/null | grep -c ' Ready ' || true)"
  [[ "$have" -ge "$want" ]]
}

# ---- commands ---------------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  [[ -f "$BIN/.complete" ]] || die "control plane binaries missing in $BIN; run 'make controlplane' (hack/build-controlplane.sh)"
  [[ -x "$PYTHON" ]] || die "python not found at $PYTHON; run 'make setup'"
  command -v openssl >/dev/null || die "openssl not found; install it (apt-get install openssl)"

  local running=0 name
  for name in "${COMPONENTS[@]}"; do [[ -n "$(pid_of "$name")" ]] && running=$((running + 1)); done
  if ((running == ${#COMPONENTS[@]})) && [[ -f "$PORTS" ]]; then
    # shellcheck disable=SC1090
    source "$PORTS"
    if api_get /readyz >/dev/null; then
      log "already up (kubeconfig: $GREEN_KUBECONFIG)"
      return 0
    fi
  fi
  if ((running > 0)); then
    log "found a partial or unhealthy cluster ($running of ${#COMPONENTS[@]} components running); restarting it"
    stop_all
  fi
  rm -rf "$DATA" "$LOGS"
  mkdir -p "$GREEN_STATE" "$DATA" "$LOGS" "$PIDS"
  gen_pki

  ETCD_PORT="$(pick_port etcd "${GREEN_ETCD_PORT:-23790}")"
  ETCD_PEER_PORT="$(pick_port etcd-peer "${GREEN_ETCD_PEER_PORT:-23800}")"
  API_PORT="$(pick_port kube-apiserver "${GREEN_API_PORT:-16443}")"
  KCM_PORT="$(pick_port kube-controller-manager "${GREEN_KCM_PORT:-20257}")"
  SCHED_PORT="$(pick_port kube-scheduler "${GREEN_SCHED_PORT:-20259}")"
  KWOK_PORT="$(pick_port kwok "${GREEN_KWOK_PORT:-20247}")"
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPI_PORT=%s\nKCM_PORT=%s\nSCHED_PORT=%s\nKWOK_PORT=%s\n' \
    "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT" >"$PORTS"

  write_kubeconfig "$GREEN_KUBECONFIG" admin "$API_PORT"
  write_kubeconfig "$GREEN_STATE/controller-manager.kubeconfig" controller-manager "$API_PORT"
  write_kubeconfig "$GREEN_STATE/scheduler.kubeconfig" scheduler "$API_PORT"
  write_kubeconfig "$GREEN_STATE/kwok.kubeconfig" kwok "$API_PORT"

  STARTED=()
  start etcd --name=node0 --data-dir="$DATA/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="node0=http://127.0.0.1:$ETCD_PEER_PORT" \
    --auto-compaction-retention=1 --quota-backend-bytes=8589934592
  STARTED+=(etcd)
  wait_until "etcd on :$ETCD_PORT" 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --service-cluster-ip-range=10.96.0.0/16 \
    --enable-priority-and-fairness=false --max-requests-inflight=0 --max-mutating-requests-inflight=0 \
    --event-ttl=1h
  STARTED+=(kube-apiserver)
  wait_until "kube-apiserver on :$API_PORT" "$UP_TIMEOUT" api_get /readyz

  start kube-controller-manager --kubeconfig="$GREEN_STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$GREEN_STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$GREEN_STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --leader-elect=false \
    --controllers='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller' \
    --kube-api-qps=5000 --kube-api-burst=10000 --concurrent-job-syncs=20 --concurrent-gc-syncs=50
  STARTED+=(kube-controller-manager)

  start kube-scheduler --kubeconfig="$GREEN_STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$GREEN_STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$GREEN_STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false \
    --kube-api-qps=5000 --kube-api-burst=10000
  STARTED+=(kube-scheduler)

  start kwok --kubeconfig="$GREEN_STATE/kwok.kubeconfig" --config="$here/kwok/stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --tls-cert-file="$PKI/kwok.crt" --tls-private-key-file="$PKI/kwok.key" \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
    --node-lease-duration-seconds=40
  STARTED+=(kwok)

  local nodes
  nodes="$("$PYTHON" "$here/cluster/gen_nodes.py" "$NODES_FILE")" || { stop_all; die "could not read the nodes file $NODES_FILE"; }
  # A file with no regions (a MultiKueue manager, hack/multicluster.sh) gives a cluster without nodes.
  if [[ -n "$nodes" ]]; then
    kubectl_admin apply -f - >/dev/null <<<"$nodes" || { stop_all; die "could not create the simulated nodes from $NODES_FILE"; }
  fi
  wait_until "kwok to mark the nodes Ready" "$UP_TIMEOUT" nodes_ready
  # Pods need the namespace's default ServiceAccount, which the controller-manager creates.
  wait_until "the controller-manager (default ServiceAccount)" "$UP_TIMEOUT" \
    kubectl_admin get serviceaccount default -n default
  log "up in $((SECONDS - t0))s; kubeconfig: $GREEN_KUBECONFIG (export KUBECONFIG=$GREEN_KUBECONFIG)"
}

cmd_down() {
  # Kueue and JobSet (hack/kueue.sh), when they run beside this cluster.
  if [[ -d "$GREEN_STATE/kueue" ]]; then "$here/kueue.sh" down || true; fi
  # Helpers started beside the cluster (the demo's operator) record their pid here too.
  local f pid
  for f in "$PIDS"/operator-*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q green_operator; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$f"
  done
  stop_all
  rm -rf "$DATA" "$PIDS" "$PORTS" "$PKI" "$GREEN_STATE/kueue"
  rm -f "$GREEN_STATE"/*.kubeconfig "$GREEN_KUBECONFIG"
  log "down (logs kept in $LOGS)"
}

component_ports() { # the ports a component listens on (from ports.env)
  case "$1" in
    etcd) echo "$ETCD_PORT ${ETCD_PEER_PORT:-}" ;;
    kube-apiserver) echo "$API_PORT" ;;
    kube-controller-manager) echo "$KCM_PORT" ;;
    kube-scheduler) echo "$SCHED_PORT" ;;
    kwok) echo "$KWOK_PORT" ;;
  esac
}

cmd_restart() { # cmd_restart <component> [--kill]
  local name="${1:-}" sig=TERM t0=$SECONDS
  [[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "restart: name one of: ${COMPONENTS[*]}"
  [[ "${2:-}" == "--kill" ]] && sig=KILL
  [[ -f "$PIDS/$name.args" && -f "$PORTS" ]] || die "restart: $name was not started by 'up'"
  # shellcheck disable=SC1090
  source "$PORTS"
  local -a args
  mapfile -d '' args <"$PIDS/$name.args"
  STARTED=("$name")
  stop_one "$name" "$sig"
  # A killed multi-threaded process shows as a zombie while its last threads still hold its
  # listening sockets: wait for its ports, or the new one fails with "address already in use".
  local port deadline=$((SECONDS + 30))
  for port in $(component_ports "$name"); do
    until port_free "$port"; do
      ((SECONDS < deadline)) || die "restart: port $port of $name is still taken after 30s"
      sleep 0.1
    done
  done
  start "$name" "${args[@]}"
  # Only this component is checked while waiting; a failed restart leaves the others running.
  deadline=$((SECONDS + UP_TIMEOUT))
  until { [[ "$name" != etcd ]] || curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; } &&
        api_get /readyz >/dev/null 2>&1; do
    alive "$(cat "$PIDS/$name.pid" 2>/dev/null || true)" || die "restart: $name exited while starting; see $LOGS/$name.log"
    ((SECONDS < deadline)) || die "restart: $name not healthy after ${UP_TIMEOUT}s (logs in $LOGS)"
    sleep 0.3
  done
  log "restarted $name (SIG$sig) in $((SECONDS - t0))s"
}

cmd_status() {
  local name pid
  for name in "${COMPONENTS[@]}"; do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then printf "%-24s running (pid %s)\n" "$name" "$pid"; else printf "%-24s stopped\n" "$name"; fi
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) shift; cmd_restart "$@" ;;
  env) echo "export KUBECONFIG=$GREEN_KUBECONFIG" ;;
  *) echo "usage: $0 up|down|status|restart <component> [--kill]|env" >&2; exit 2 ;;
esac
