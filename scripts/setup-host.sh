#!/bin/sh
# Prepares a Debian 12 host to run koji-adjutant's podman runtime and its tests.
#
# Idempotent: packages already present are not reinstalled, and
# /etc/containers/containers.conf is rewritten only when it differs from conf/containers.conf.
#
# The containers.conf it installs (runc, lowered default ulimits) is for Debian 12 hosts with
# the hybrid cgroup v1 layout, where crun cannot start containers and podman's built-in
# rlimits exceed what root may set. Fedora/RHEL production hosts (crun, cgroup v2) keep their
# own containers.conf: run this script only on the Debian host family.
#
# Usage: scripts/setup-host.sh            (as root)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
conf_src="$here/../conf/containers.conf"
conf_dst=/etc/containers/containers.conf

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host.sh: must run as root (it installs packages and writes $conf_dst)" >&2
    exit 1
fi
if [ ! -r /etc/debian_version ]; then
    echo "setup-host.sh: this script is for Debian hosts; on Fedora/RHEL install podman, crun" >&2
    echo "and mmdebstrap/debootstrap with dnf and keep the distribution's containers.conf" >&2
    exit 1
fi

# podman + runc run the containers; catatonit is podman's --init; uidmap gives podman the
# newuidmap helpers; mmdebstrap builds the builder image and debootstrap is its fallback;
# rpm lets tests build SRPMs on the host; util-linux provides flock for build-image.sh.
packages="podman runc catatonit conmon uidmap mmdebstrap debootstrap rpm util-linux
          ca-certificates"
missing=""
for pkg in $packages; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
if [ -n "$missing" ]; then
    echo "setup-host.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -q --no-install-recommends $missing
else
    echo "setup-host.sh: packages present"
fi

mkdir -p /etc/containers
if [ -f "$conf_dst" ] && cmp -s "$conf_src" "$conf_dst"; then
    echo "setup-host.sh: $conf_dst is current"
else
    if [ -f "$conf_dst" ]; then
        backup="$conf_dst.bak.$(date +%Y%m%d%H%M%S)"
        cp -p "$conf_dst" "$backup"
        echo "setup-host.sh: saved the previous $conf_dst as $backup"
    fi
    install -m 0644 "$conf_src" "$conf_dst"
    echo "setup-host.sh: wrote $conf_dst"
fi

podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}} {{.Store.GraphDriverName}}' \
    | { read -r runtime cgroups driver
        echo "setup-host.sh: podman ready (runtime $runtime, cgroup $cgroups, storage $driver)"; }
