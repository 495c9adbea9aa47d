#!/usr/bin/env bash
# Builds the Kueue manager (sigs.k8s.io/kueue v0.17.0, cmd/kueue) and the JobSet controller
# (sigs.k8s.io/jobset v0.11.1) from the pinned Go modules under hack/kueue/, into a cache beside the
# control plane's, keyed by a hash of those pins. A second run with the same pins does nothing.
# The CRDs and webhook manifests are copied from the module cache next to the binaries, so
# hack/kueue.sh needs nothing but this directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/env.sh
source "$here/env.sh"

if ! command -v go >/dev/null 2>&1; then
  echo "build-kueue: 'go' is not on PATH; install Go >= 1.26 (https://go.dev/dl/)" >&2
  exit 1
fi

bin_dir="$(kueue_bin_dir)"
if [[ -f "$bin_dir/.complete" ]]; then
  echo "kueue binaries up to date in $bin_dir"
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
  rm -f "$bin_dir/.$out.tmp" # left by an interrupted build
  (cd "$here/kueue/$mod" && go build -ldflags "-s -w" -o "$bin_dir/.$out.tmp" "$pkg")
  mv -f "$bin_dir/.$out.tmp" "$bin_dir/$out"
  echo "built $out in $((SECONDS - t0))s"
}

copy_manifests() { # copy_manifests <module dir> <module path> <dest>: CRDs and webhooks from the source
  local mod="$1" path="$2" dest="$bin_dir/$3" src
  src="$(cd "$here/kueue/$mod" && go list -m -f '{{.Dir}}' "$path")"
  rm -rf "$dest"; mkdir -p "$dest/crd"
  cp "$src"/config/components/crd/bases/*.yaml "$dest/crd/"
  cp "$src/config/components/webhook/manifests.yaml" "$dest/webhooks.yaml"
  chmod -R u+w "$dest"
}

build kueue sigs.k8s.io/kueue/cmd/kueue kueue
build jobset sigs.k8s.io/jobset jobset
copy_manifests kueue sigs.k8s.io/kueue kueue-config
copy_manifests jobset sigs.k8s.io/jobset jobset-config
touch "$bin_dir/.complete"
echo "kueue binaries ready in $bin_dir"
