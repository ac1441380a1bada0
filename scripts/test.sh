#!/usr/bin/env bash
# The test command: installs what the build needs, then runs every crate's tests.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p fedchain-crypto`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --locked "$@"
