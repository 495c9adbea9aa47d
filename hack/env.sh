# Shared paths for the local control plane scripts. Source it; it defines nothing but variables
# and small functions. Everything lives outside the repository so clean clones reuse the cache.
GREEN_CACHE="${GREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/green-training}"
GREEN_STATE="${GREEN_STATE:-$GREEN_CACHE/cluster}"
GREEN_KUBECONFIG="${GREEN_KUBECONFIG:-$GREEN_STATE/kubeconfig}"
_hack_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

controlplane_key() {
  # The cache key: every pinned input of the build plus the Go version.
  (cd "$_hack_dir/controlplane" && cat */go.mod */go.sum $(find . -name '*.go' | sort) \
    "$_hack_dir/build-controlplane.sh" && go env GOVERSION) \
    | sha256sum | cut -c1-16
}

controlplane_bin_dir() {
  echo "$GREEN_CACHE/bin/$(controlplane_key)"
}

kueue_key() {
  # The Kueue/JobSet cache key: their pinned modules, the build script and the Go version.
  (cd "$_hack_dir/kueue" && cat */go.mod */go.sum $(find . -name '*.go' | sort) \
    "$_hack_dir/build-kueue.sh" && go env GOVERSION) \
    | sha256sum | cut -c1-16
}

kueue_bin_dir() {
  echo "$GREEN_CACHE/bin/kueue-$(kueue_key)"
}

alive() { # alive <pid>: a process that exists and is not a zombie waiting to be reaped
  local state
  [[ -n "${1:-}" ]] || return 1
  state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != "Z" ]]
}
