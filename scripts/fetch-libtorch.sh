#!/usr/bin/env bash
# Fetches the CPU part of libtorch 2.13.0 for the `torch` feature of fedchain-models, from the
# PyPI wheels (no internet needed once the wheels are cached), and extracts only what tch needs
# into <repo>/.libtorch/ (git-ignored; .cargo/config.toml points LIBTORCH at .libtorch/torch):
#   .libtorch/torch/lib/{libtorch_cpu.so,libtorch.so,libc10.so,libgomp.so.1}
#   .libtorch/torch/include/
#   .libtorch/nvidia/cu13/lib/{libcudart.so.13,libcupti.so.13}
# libtorch_cpu.so of this wheel links libcudart and libcupti through $ORIGIN/../../nvidia/cu13/lib,
# so torch/ and nvidia/ must stay side by side. About 490 MB extracted.
# The wheels are cached in ${FEDCHAIN_LIBTORCH_CACHE:-$HOME/.cache/fedchain-libtorch}/wheels and
# downloaded with pip only when missing. Idempotent; the last line printed is the LIBTORCH dir.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
cache="${FEDCHAIN_LIBTORCH_CACHE:-$HOME/.cache/fedchain-libtorch}"
wheels="$cache/wheels"
dest="$repo/.libtorch"
stamp="$dest/.fetched-$TORCH_VERSION"

libs=(torch/lib/libtorch_cpu.so torch/lib/libtorch.so torch/lib/libc10.so torch/lib/libgomp.so.1)
cuda_libs=(nvidia/cu13/lib/libcudart.so.13 nvidia/cu13/lib/libcupti.so.13)

complete() {
  [ -e "$stamp" ] || return 1
  local f
  for f in "${libs[@]}" "${cuda_libs[@]}" torch/include/torch/script.h; do
    [ -e "$dest/$f" ] || return 1
  done
}

if complete; then
  echo "fedchain libtorch: $dest already has libtorch $TORCH_VERSION" >&2
  echo "$dest/torch"
  exit 0
fi

find_wheel() { compgen -G "$wheels/$1" | head -n 1 || true; }

torch_whl=$(find_wheel "torch-$TORCH_VERSION-*.whl")
cudart_whl=$(find_wheel "nvidia_cuda_runtime-$CUDART_VERSION-*.whl")
cupti_whl=$(find_wheel "nvidia_cuda_cupti-$CUPTI_VERSION-*.whl")
if [ -z "$torch_whl" ] || [ -z "$cudart_whl" ] || [ -z "$cupti_whl" ]; then
  command -v pip >/dev/null 2>&1 || { echo "fedchain libtorch: pip is needed to download the wheels into $wheels" >&2; exit 1; }
  mkdir -p "$wheels"
  echo "fedchain libtorch: downloading wheels into $wheels (about 540 MB)" >&2
  pip download --quiet --no-deps --dest "$wheels" \
    "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION" >&2
  torch_whl=$(find_wheel "torch-$TORCH_VERSION-*.whl")
  cudart_whl=$(find_wheel "nvidia_cuda_runtime-$CUDART_VERSION-*.whl")
  cupti_whl=$(find_wheel "nvidia_cuda_cupti-$CUPTI_VERSION-*.whl")
  if [ -z "$torch_whl" ] || [ -z "$cudart_whl" ] || [ -z "$cupti_whl" ]; then
    echo "fedchain libtorch: pip did not leave the expected wheels in $wheels" >&2
    exit 1
  fi
fi

command -v unzip >/dev/null 2>&1 || { echo "fedchain libtorch: unzip is needed" >&2; exit 1; }
# Extract into a fresh temporary dir next to the destination, then swap it in, so an interrupted
# run never leaves a half-extracted .libtorch that looks complete.
tmp="$repo/.libtorch.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp"
echo "fedchain libtorch: extracting into $dest" >&2
unzip -q -o "$torch_whl" "${libs[@]}" 'torch/include/*' -d "$tmp"
unzip -q -o "$cudart_whl" "${cuda_libs[0]}" -d "$tmp"
unzip -q -o "$cupti_whl" "${cuda_libs[1]}" -d "$tmp"
touch "$tmp/.fetched-$TORCH_VERSION"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
complete || { echo "fedchain libtorch: extraction incomplete in $dest" >&2; exit 1; }
echo "$dest/torch"
