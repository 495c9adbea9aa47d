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

K8S_VERSION=v1.35.4
HELM_VERSION=v3.22.0
# Version stamps the upstream release builds inject; without them the binaries report v0.0.0-master,
# which kubectl and helm refuse to parse.
K8S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 \
 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=35"
HELM_LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=35 \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=35"

build() { # build <module dir> <package> <output name> [extra ldflags]
  local mod="$1" pkg="$2" out="$3" extra="${4:-}"
  if [[ -x "$bin_dir/$out" ]]; then
    return 0
  fi
  echo "building $out ($pkg) ..."
  local t0=$SECONDS
  rm -f "$bin_dir/.$out.tmp" # left by an interrupted build
  (cd "$here/controlplane/$mod" && go build -ldflags "-s -w $extra" -o "$bin_dir/.$out.tmp" "$pkg")
  mv -f "$bin_dir/.$out.tmp" "$bin_dir/$out"
  echo "built $out in $((SECONDS - t0))s"
}

build etcd . etcd
build kubernetes ./cmd/kube-apiserver kube-apiserver "$K8S_LDFLAGS"
build kubernetes ./cmd/kube-controller-manager kube-controller-manager "$K8S_LDFLAGS"
build kubernetes ./cmd/kube-scheduler kube-scheduler "$K8S_LDFLAGS"
build kubernetes ./cmd/kubectl kubectl "$K8S_LDFLAGS"
build kwok sigs.k8s.io/kwok/cmd/kwok kwok
build helm helm.sh/helm/v3/cmd/helm helm "$HELM_LDFLAGS"
touch "$bin_dir/.complete"
echo "control plane binaries ready in $bin_dir"
