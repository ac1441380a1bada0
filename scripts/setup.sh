#!/usr/bin/env bash
# Installs the system packages the build needs on a fresh Debian machine (idempotent) and
# prints the cargo target directory to use. Sourced by scripts/test.sh and scripts/simulate.sh.
#   m4             GMP's build inside rug
#   libclang-dev   bindgen in librocksdb-sys
#   librocksdb-dev the system RocksDB the ledger links (7.8.3 on bookworm)
#   prometheus     promtool and a Prometheus server for the fedchain-metrics tests
# It is sourced, so it leaves the caller's shell options alone and reports failure by status.
need=()
command -v m4 >/dev/null 2>&1 || need+=(m4)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s librocksdb-dev >/dev/null 2>&1 || need+=(librocksdb-dev)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "fedchain setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null || return 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fedchain-target}"
# A linked git worktree (its .git is a file) gets its own target directory: cargo identifies
# workspace crates by their path inside the workspace, so two worktrees sharing one directory
# would reuse each other's stale artifacts.
if [ -f .git ] && [[ "$CARGO_TARGET_DIR" != *-wt-* ]]; then
  export CARGO_TARGET_DIR="$CARGO_TARGET_DIR-wt-$(basename "$PWD")"
  echo "fedchain setup: git worktree, CARGO_TARGET_DIR=$CARGO_TARGET_DIR" >&2
fi
# Link the system RocksDB instead of building the bundled C++ sources (about 19 min on 2 cores).
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
if [ -z "${ROCKSDB_LIB_DIR:-}" ] && [ -e "/usr/lib/$multiarch/librocksdb.so" ]; then
  export ROCKSDB_LIB_DIR="/usr/lib/$multiarch"
fi
