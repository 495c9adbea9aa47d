#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, helm) from the pinned Go modules under hack/controlplane/, into a cache outside the
# repository keyed by a hash of those pins. A second run with the same pins does nothing.
# An interrupted build leaves no half-written binary: each one is written to a temp name and renamed,
# and the cache directory is only marked complete when every binary is in place.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/env.sh
source "$here/env.sh"

if ! command -v go >/dev/null 2>&1; then
  echo "build-controlplane: 'go' is not on PATH; install Go >= 1.26 (https://go.dev/dl/)" >&2
  exit 1
fi

bin_dir="$(controlplane_bin_dir)"
if [[ -f "$bin_dir/.complete" ]]; then
  echo "control plane binaries up to date in $bin_dir"
  exit 0
fi
mkdir -p "$bin_dir"
export GOFLAGS="-mod=mod -trimpath"

build() { # build <module dir> <package> <output name>
  local mod="$1" pkg="$2" out="$3"
  if [[ -x "$bin_dir/$out" ]]; then
    return 0
  fi
  echo "building $out ($pkg) ..."
  local t0=$SECONDS
  (cd "$here/controlplane/$mod" && go build -ldflags "-s -w" -o "$bin_dir/.$out.tmp" "$pkg")
  mv -f "$bin_dir/.$out.tmp" "$bin_dir/$out"
  echo "built $out in $((SECONDS - t0))s"
}

build etcd . etcd
build kubernetes ./cmd/kube-apiserver kube-apiserver
build kubernetes ./cmd/kube-controller-manager kube-controller-manager
build kubernetes ./cmd/kube-scheduler kube-scheduler
build kubernetes ./cmd/kubectl kubectl
build kwok sigs.k8s.io/kwok/cmd/kwok kwok
build helm helm.sh/helm/v3/cmd/helm helm
touch "$bin_dir/.complete"
echo "control plane binaries ready in $bin_dir"
