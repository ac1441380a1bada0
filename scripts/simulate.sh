#!/usr/bin/env bash
# The main job in one command: installs what the build needs, builds fedchain (release) and runs
# `fedchain simulate` with the embedded defaults (5 hospitals, threshold 3, 2048-bit key, breast
# cancer, logistic regression, Dirichlet(0.5), 20 rounds). Arguments go to `fedchain simulate`
# (e.g. `scripts/simulate.sh --config configs/digits-mlp.toml --force`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release --locked -p fedchain -- simulate "$@"
