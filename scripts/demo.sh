#!/usr/bin/env bash
# The README's main command: sets up this machine (as scripts/setup-dev.sh does: packages,
# podman settings, the locally built builder image), builds koji-adjutant, then builds the
# bundled example SRPM (tests/data/srpms/hello-c) locally in a container, as a Koji buildArch
# task would, and prints where the RPMs and logs are.
#
#   scripts/demo.sh [RESULT_DIR]        (default: ./demo-results)
#
# Needs root (podman runs rootful here). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
result_dir=${1:-demo-results}
package=hello-c

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run as root (podman and the set-up need it)" >&2
    exit 1
fi

echo "demo.sh: setting up the machine (scripts/setup-dev.sh)"
scripts/setup-dev.sh

echo "demo.sh: building koji-adjutant"
cargo build --quiet --bin koji-adjutant

# The example SRPM is made from its spec and source, as a packager's fedpkg srpm would.
topdir=$(mktemp -d)
trap 'rm -rf "$topdir"' EXIT
rpmbuild --quiet -bs --define "_topdir $topdir" \
    --define "_sourcedir $PWD/tests/data/srpms/$package" \
    "tests/data/srpms/$package/$package.spec" >/dev/null
srpm=$(ls "$topdir"/SRPMS/"$package"-*.src.rpm)

echo "demo.sh: building $(basename "$srpm") in localhost/koji-adjutant-builder:latest"
rm -rf "$result_dir"
target/debug/koji-adjutant build "$srpm" --define 'dist .demo' --resultdir "$result_dir"

echo
echo "demo.sh: done. RPMs:"
for rpm in "$result_dir"/*.rpm; do
    echo "  $(realpath "$rpm")"
done
echo "demo.sh: logs (build.log, root.log, state.log, ...) are in $(realpath "$result_dir")"
