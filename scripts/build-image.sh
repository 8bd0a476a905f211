#!/bin/sh
# Builds the koji-adjutant builder image from Debian packages, without any container registry.
#
#   scripts/build-image.sh [--force] [--image NAME:TAG] [--method mmdebstrap|debootstrap]
#
# The rootfs is made by mmdebstrap (or debootstrap) from the mirror that this machine's own apt
# sources name, streamed as a tar into `podman import`. The image carries the label
# io.koji.adjutant.builder.recipe=<sha256 of this script + packages + suite + mirrors + method>
# and a tag r-<first 16 hex of that hash>; when the target image already carries the current
# hash the script does nothing and exits in well under a second. On success the last line on
# stdout is the image name.
#
# Environment overrides: PACKAGES (extra packages appended to the base set), SUITE (default:
# the host's codename), MIRROR and SECURITY_MIRROR (default: read from /etc/apt sources),
# DEB_CACHE (default /var/cache/koji-adjutant/builder-debs: downloaded .debs kept between
# runs so that a rebuild downloads only what changed).
#
# This is a test and demo image for Debian hosts. Production images are Fedora/RHEL images
# with the same tools (rpm-build, createrepo_c, dnf, gcc, make, ...); see docs/podman.md.
set -eu

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

# ---------------------------------------------------------------------------------------------
# Customization, run by mmdebstrap/debootstrap on the host with the rootfs as $1.
# ---------------------------------------------------------------------------------------------
customize() {
    root=$1
    # rpm on Debian keeps a per-user database (%_dbpath ~/.rpmdb), so dnf (root) and rpmbuild
    # (uid 1000) would see different databases. Pin it to the system path.
    mkdir -p "$root/etc/rpm" "$root/var/lib/rpm"
    printf '%%_dbpath /var/lib/rpm\n' > "$root/etc/rpm/macros"

    # Builds run as uid 1000, never as root.
    chroot "$root" useradd --create-home --uid 1000 --user-group --shell /bin/bash builder

    # dnf cannot find a release version on Debian (nothing provides system-release).
    mkdir -p "$root/etc/dnf/vars" "$root/etc/yum.repos.d"
    cut -d. -f1 "$root/etc/debian_version" > "$root/etc/dnf/vars/releasever"
    # Debian's dnf.conf skips broken repos silently; a broken build repo must fail the build.
    cat > "$root/etc/dnf/dnf.conf" <<'DNFCONF'
[main]
gpgcheck=True
installonly_limit=3
clean_requirements_on_remove=True
best=False
skip_if_unavailable=False
install_weak_deps=False
keepcache=False
reposdir=/etc/yum.repos.d
DNFCONF

    # The rpmdb starts empty, so every BuildRequires/Requires on the Debian userland (gcc,
    # /bin/sh, libc.so.6()(64bit)) would be unsatisfiable. A generated virtual package declares
    # what the Debian rootfs provides: dpkg package names (epochs dropped: an RPM epoch would
    # make `gcc >= 13` true for Debian's 4:12.2), ELF sonames, pkgconfig names and executables.
    chroot "$root" /bin/sh -eu <<'PROVIDES'
work=$(mktemp -d)
provides=$work/provides
dpkg-query -W -f '${Package} ${Version}\n' | while read -r name version; do
    version=${version#*:}
    case $version in
        *-*) release=${version##*-}; upstream=${version%-*} ;;
        *) release=0; upstream=$version ;;
    esac
    # RPM versions may not contain '-' or ':'.
    upstream=$(printf '%s' "$upstream" | tr -- '-:' '__')
    echo "Provides: $name = $upstream-$release"
done > "$provides"
find /usr/lib /usr/lib64 -name '*.so*' -type f 2>/dev/null \
    | /usr/lib/rpm/elfdeps --provides | sort -u | sed 's/^/Provides: /' >> "$provides"
echo 'Provides: rtld(GNU_HASH)' >> "$provides"
for pc in /usr/lib/*/pkgconfig/*.pc /usr/lib/pkgconfig/*.pc /usr/share/pkgconfig/*.pc; do
    [ -f "$pc" ] || continue
    pcver=$(sed -n 's/^Version:[[:space:]]*//p' "$pc" | head -n 1 | tr -- '-:' '__')
    echo "Provides: pkgconfig($(basename "$pc" .pc)) = ${pcver:-0}"
done >> "$provides"
for dir in /usr/bin /usr/sbin; do
    for exe in "$dir"/*; do
        [ -e "$exe" ] || continue
        # Names like "[" cannot be written in a spec's Provides.
        case ${exe##*/} in *[!A-Za-z0-9._+-]*) continue ;; esac
        echo "Provides: $exe"
        # merged /usr: /bin/sh and /usr/bin/sh are the same file.
        echo "Provides: ${exe#/usr}"
    done
done | sort -u >> "$provides"
cat > "$work/debian-rootfs-provides.spec" <<SPEC
Name: debian-rootfs-provides
Version: 1
Release: 1
Summary: What the Debian userland of this image provides, in RPM terms
License: MIT
BuildArch: noarch
$(cat "$provides")

%description
Virtual package generated when the koji-adjutant builder image was built.

%files
SPEC
rpmbuild --quiet -bb --define "_topdir $work/top" "$work/debian-rootfs-provides.spec"
# Debian's rpm warns that rpm -i should not be used directly; the warning is harmless here.
rpm -i --quiet "$work"/top/RPMS/noarch/debian-rootfs-provides-1-1.noarch.rpm 2>/dev/null
rpm -q debian-rootfs-provides >/dev/null
rm -rf "$work"
PROVIDES
}

if [ "${1:-}" = "__customize" ]; then
    customize "$2"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Arguments and recipe
# ---------------------------------------------------------------------------------------------
force=0
image=localhost/koji-adjutant-builder:latest
method=mmdebstrap
while [ $# -gt 0 ]; do
    case $1 in
        --force) force=1 ;;
        --image) image=$2; shift ;;
        --method) method=$2; shift ;;
        -h|--help) sed -n '2,20p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $method in
    mmdebstrap|debootstrap) ;;
    *) echo "build-image.sh: --method must be mmdebstrap or debootstrap, not '$method'" >&2; exit 2 ;;
esac
case $image in
    *:*) ;;
    *) image=$image:latest ;;
esac
repo=${image%:*}

log() { echo "build-image.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Reads "URI SUITE" pairs for component main from the host's apt sources, in both the deb822
# (*.sources) and the one-line (*.list) formats.
apt_sources() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && comps ~ /(^| )main( |$)/ && enabled != "no")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
                types = ""; comps = ""; nu = 0; ns = 0; enabled = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            { key = tolower($1); sub(/:$/, "", key) }
            key == "types" { types = $0; sub(/^[^:]*:[[:space:]]*/, "", types) }
            key == "components" { comps = $0; sub(/^[^:]*:[[:space:]]*/, "", comps) }
            key == "enabled" { enabled = tolower($2) }
            key == "uris" { for (i = 2; i <= NF; i++) u[++nu] = $i }
            key == "suites" { for (i = 2; i <= NF; i++) s[++ns] = $i }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '
            $1 != "deb" { next }
            { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ } }
            { for (c = i + 2; c <= NF; c++) if ($c == "main") { print $i, $(i + 1); next } }
        ' "$f"
    done
}

suite=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell the Debian suite from /etc/os-release; set SUITE=bookworm"
sources=$(apt_sources)
mirror=${MIRROR:-$(printf '%s\n' "$sources" | awk -v s="$suite" '$2 == s { print $1; exit }')}
security_mirror=${SECURITY_MIRROR:-$(printf '%s\n' "$sources" \
    | awk -v s="$suite-security" '$2 == s { print $1; exit }')}
[ -n "$mirror" ] || die "no apt source for suite '$suite' (component main) in /etc/apt; \
add one or set MIRROR=http://your.mirror/debian"
has_updates=$(printf '%s\n' "$sources" | awk -v s="$suite-updates" '$2 == s { print "yes"; exit }')

# passwd: useradd for the hook; gpg: enough for gpgme (dnf) without the whole gnupg suite;
# python3: dnf and the port-connect test; util-linux: unshare/setsid/flock;
# procps: ps/pkill for operators debugging a build.
base_packages="rpm createrepo-c dnf gcc make libc6-dev file elfutils patch xz-utils bzip2 unzip
cpio passwd gpg python3 util-linux procps"
packages=$(printf '%s %s\n' "$base_packages" "${PACKAGES:-}" | tr -s ' \n' '\n\n' | sed '/^$/d' \
    | sort -u | tr '\n' ' ')
packages=${packages% }

recipe=$( {
    cat "$self"
    printf 'method=%s\nsuite=%s\nmirror=%s\nsecurity=%s\nupdates=%s\npackages=%s\n' \
        "$method" "$suite" "$mirror" "$security_mirror" "$has_updates" "$packages"
} | sha256sum | cut -c1-64)
short=$(printf '%s' "$recipe" | cut -c1-16)
label=io.koji.adjutant.builder.recipe

current_hash() {
    podman image inspect --format "{{ index .Labels \"$label\" }}" "$1" 2>/dev/null || true
}

# Fast path before taking the lock: the common case in tests and CI is "already current".
if [ "$force" -eq 0 ] && [ "$(current_hash "$image")" = "$recipe" ]; then
    podman tag "$image" "$repo:r-$short" 2>/dev/null || true
    log "$image is current (recipe $short)"
    echo "$image"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap root mode and rootful podman)"
command -v podman >/dev/null || die "podman is not installed; run scripts/setup-host.sh"
command -v flock >/dev/null || die "flock (util-linux) is not installed"

cache=${DEB_CACHE:-/var/cache/koji-adjutant/builder-debs}
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
# Another run may have built it while this one waited for the lock.
if [ "$force" -eq 0 ] && [ "$(current_hash "$image")" = "$recipe" ]; then
    log "$image was built by a concurrent run (recipe $short)"
    echo "$image"
    exit 0
fi

start=$(date +%s)
tmp_tag="$repo:building-$short-$$"
cleanup() {
    # rmi of a name removes the image only when no other name points at it.
    podman rmi "$tmp_tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

log "building $image (recipe $short, $method, suite $suite, mirror $mirror)"

excludes='/usr/share/man/* /usr/share/doc/* /usr/share/info/* /usr/share/locale/*
/usr/share/lintian/* /usr/share/linda/*'

if [ "$method" = mmdebstrap ]; then
    command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed; run scripts/setup-host.sh"
    set -- --variant=essential --mode=root --format=tar --skip=essential/unlink \
        --include="$(printf '%s' "$packages" | tr ' ' ',')" \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/partial' \
        --setup-hook="find '$cache' -maxdepth 1 -name '*.deb' -exec cp -l -t \"\$1/var/cache/apt/archives/\" {} + 2>/dev/null || find '$cache' -maxdepth 1 -name '*.deb' -exec cp -t \"\$1/var/cache/apt/archives/\" {} +" \
        --customize-hook="sync-out /var/cache/apt/archives '$cache.new'" \
        --customize-hook="\"$self\" __customize \"\$1\""
    # The patterns are for dpkg: no globbing against the host's files.
    set -f
    for pattern in $excludes; do
        set -- "$@" "--dpkgopt=path-exclude=$pattern"
    done
    set +f
    set -- "$@" --dpkgopt='path-include=/usr/share/doc/*/copyright'
    set -- "$@" "$suite" - "deb $mirror $suite main"
    [ -n "$has_updates" ] && set -- "$@" "deb $mirror $suite-updates main"
    [ -n "$security_mirror" ] && set -- "$@" "deb $security_mirror $suite-security main"
    rm -rf "$cache.new"
    mkdir -p "$cache.new"
    # The rootfs never touches the disk as a tar: mmdebstrap streams into podman import.
    # dash has no pipefail: mmdebstrap's status travels through a file.
    status_file="$cache.new/.mmdebstrap-status"
    import_rc=0
    { mmdebstrap "$@" && echo 0 > "$status_file" || echo $? > "$status_file"; } \
        | podman import --change "LABEL $label=$recipe" --change "USER root" \
            --change 'CMD ["/bin/bash"]' - "$tmp_tag" >/dev/null || import_rc=$?
    if [ "$(cat "$status_file" 2>/dev/null)" != 0 ] || [ "$import_rc" -ne 0 ]; then
        mmdebstrap_rc=$(cat "$status_file" 2>/dev/null || echo unknown)
        rm -rf "$cache.new"
        die "mmdebstrap (status $mmdebstrap_rc) | podman import (status $import_rc) failed;\
 the previous image (if any) is untouched"
    fi
    # Keep exactly the .debs this recipe used, so that the cache does not grow forever.
    rm -rf "$cache.old"
    mkdir -p "$cache.old"
    find "$cache" -maxdepth 1 -name '*.deb' -exec mv -t "$cache.old" {} +
    find "$cache.new" -maxdepth 1 -name '*.deb' -exec mv -t "$cache" {} +
    rm -rf "$cache.new" "$cache.old"
else
    command -v debootstrap >/dev/null || die "debootstrap is not installed; run scripts/setup-host.sh"
    rootfs=$(mktemp -d /var/tmp/koji-adjutant-rootfs.XXXXXX)
    trap 'cleanup; rm -rf "$rootfs"' EXIT INT TERM
    mkdir -p "$rootfs/var/cache/apt/archives"
    find "$cache" -maxdepth 1 -name '*.deb' -exec cp -t "$rootfs/var/cache/apt/archives/" {} +
    debootstrap --variant=minbase --include="$(printf '%s' "$packages" | tr ' ' ',')" \
        "$suite" "$rootfs" "$mirror" >&2
    # debootstrap handles a single suite, so updates and security fixes come from apt inside.
    {
        echo "deb $mirror $suite main"
        [ -n "$has_updates" ] && echo "deb $mirror $suite-updates main"
        [ -n "$security_mirror" ] && echo "deb $security_mirror $suite-security main"
    } > "$rootfs/etc/apt/sources.list"
    chroot "$rootfs" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -y -q upgrade' >&2
    find "$rootfs/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -u -t "$cache" {} +
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
    "$self" __customize "$rootfs"
    tar -C "$rootfs" --numeric-owner -cf - . \
        | podman import --change "LABEL $label=$recipe" --change "USER root" \
            --change 'CMD ["/bin/bash"]' - "$tmp_tag" >/dev/null \
        || die "podman import failed; the previous image (if any) is untouched"
fi

# Smoke test before the image gets its real name: everything the runtime tests rely on, as
# the build user, offline.
log "smoke-testing $tmp_tag"
if ! podman run --rm --pull=never --network=none --user 1000 "$tmp_tag" /bin/sh -ec '
        rpm -q debian-rootfs-provides >/dev/null
        rpmbuild --version >/dev/null
        createrepo_c --version >/dev/null
        python3 -c "import dnf"
        gcc --version >/dev/null
        make --version >/dev/null
        test "$(id -u)" = 1000 && test -d /home/builder' >&2; then
    die "smoke test of the new image failed; the previous image (if any) is untouched"
fi

previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
podman tag "$tmp_tag" "$image" "$repo:r-$short"
podman untag "$tmp_tag" "$tmp_tag"
# Only images this script built (they carry the recipe label) are removed, and only when no
# container uses them; podman refuses otherwise and the old image simply stays.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ] \
    && [ -n "$(current_hash "$previous")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || log "kept the previous image $previous (in use)"
fi

log "built $image (recipe $short) in $(( $(date +%s) - start )) s"
echo "$image"
