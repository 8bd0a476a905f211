#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls it).
# Installs what the tests need, idempotently, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-dev.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
