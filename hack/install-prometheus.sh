#!/usr/bin/env bash
# Installs Prometheus from Debian's package when it is missing. The end-to-end tests start their own
# Prometheus process on a free port with a generated config; the package's service is not used.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-prometheus: prometheus is not installed and apt-get is unavailable; install Prometheus >= 2.40 and put it on PATH" >&2
  exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "installing Debian's prometheus package ..."
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends: we need the server binary only, not the node exporter or a running service.
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may start a system service where an init system exists; the tests do not use it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $sudo systemctl stop prometheus || true
fi
prometheus --version 2>&1 | head -1
