#!/usr/bin/env bash
# Installs everything the build and the tests need on a Debian 12 machine, idempotently:
# system packages, the host's podman settings, the Python Koji peer used by differential
# tests, and the locally built builder image. Safe to run again; it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-dev.sh: run as root (it installs packages and writes /etc/containers)" >&2
        exit 1
    fi
}

apt_packages=(
    # building the Rust crates
    pkg-config libssl-dev libkrb5-dev
    # rpm tools on the host, for test SRPMs
    rpm createrepo-c
    # the monitoring tests: promtool checks /metrics, headless Chromium loads /status
    prometheus chromium
)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    need_root
    echo "setup-dev.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# podman, runc and this host family's containers.conf
scripts/setup-host.sh

# The upstream Koji client library and CLI: a peer nobody here wrote, for differential tests.
if ! python3 -c 'import koji, koji.xmlrpcplus' >/dev/null 2>&1; then
    python3 -m pip install -q --no-deps koji==1.36.1
    python3 -m pip install -q requests python-dateutil six defusedxml
fi

# The builder image (a no-op when it is current).
scripts/build-image.sh
