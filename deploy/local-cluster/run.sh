#!/usr/bin/env bash
# A consortium on one machine: one coordinator (aggregator + ledger + in-process validator
# replicas) and N hospital workers on loopback, from a freshly generated PKI.
#
#   deploy/local-cluster/run.sh [N]          (default N = 4; needs N >= 2)
#
# Environment: WORK (cluster directory, default a new temp dir), KEY_BITS (default 2048; 512
# is fine for a quick look), ROUNDS (default 3), FEDCHAIN (use this binary instead of building
# the release one). WORK (logs, ledger, bundles) is kept after exit.
#
# Steps: build the release binary; `fedchain ca init`; issue the aggregator, 3 validators and
# N hospitals; `fedchain keygen` with t = floor(N/3) + 1; write coordinator.toml and one
# worker-i.toml per hospital from the templates next to this script; start everything with
# metrics on 9464 (coordinator) and 9465.. (workers); wait for the rounds; `fedchain audit` the
# coordinator's ledger; stop everything on exit (trap).
set -euo pipefail

N=${1:-4}
if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 2)); then
  echo "usage: $0 [N >= 2]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
KEY_BITS=${KEY_BITS:-2048}
ROUNDS=${ROUNDS:-3}
T=$((N / 3 + 1))

if [ -z "${FEDCHAIN:-}" ]; then
  echo "== building the release binary"
  (cd "$root" && source scripts/setup.sh && cargo build --release -p fedchain >&2)
  target=$(cd "$root" && source scripts/setup.sh >/dev/null 2>&1 && echo "$CARGO_TARGET_DIR")
  FEDCHAIN="$target/release/fedchain"
fi
[ -x "$FEDCHAIN" ] || { echo "no binary at $FEDCHAIN" >&2; exit 1; }

WORK=${WORK:-$(mktemp -d -t fedchain-cluster.XXXXXX)}
mkdir -p "$WORK"
pids=()
cleanup() {
  local code=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "cluster directory (bundles, ledger, logs): $WORK"
  exit $code
}
trap cleanup EXIT INT TERM

echo "== consortium in $WORK: $N hospitals, threshold $T, $KEY_BITS-bit key, $ROUNDS rounds"
cd "$WORK"
"$FEDCHAIN" ca init --dir ca --name local-consortium
"$FEDCHAIN" ca issue --dir ca --name aggregator --role aggregator --out bundles/aggregator
for v in 0 1 2; do
  "$FEDCHAIN" ca issue --dir ca --name "validator-$v" --role validator --out "bundles/validator-$v"
done
hospitals=()
for ((i = 0; i < N; i++)); do
  "$FEDCHAIN" ca issue --dir ca --name "hospital-$i" --role hospital --out "bundles/hospital-$i"
  hospitals+=(--hospital "bundles/hospital-$i")
done
"$FEDCHAIN" keygen --job-dir job --threshold "$T" --key-bits "$KEY_BITS" "${hospitals[@]}"

experiment() {
  sed -e "s/^hospitals = .*/hospitals = $N/" -e "s/^threshold = .*/threshold = $T/" \
    -e "s/^rounds = .*/rounds = $ROUNDS/" -e "s/^key_bits = .*/key_bits = $KEY_BITS/" "$1"
}
experiment "$here/coordinator.toml" > coordinator.toml
mkdir -p logs
for ((i = 0; i < N; i++)); do
  experiment "$here/worker.toml" | sed -e "s/hospital-0/hospital-$i/g" \
    -e "s/^metrics = .*/metrics = \"127.0.0.1:$((9465 + i))\"/" > "worker-$i.toml"
done

echo "== starting the coordinator and $N workers"
"$FEDCHAIN" coordinator --config coordinator.toml > logs/coordinator.out 2> logs/coordinator.log &
coord=$!
pids+=("$coord")
for ((i = 0; i < N; i++)); do
  "$FEDCHAIN" worker --config "worker-$i.toml" > "logs/worker-$i.out" 2> "logs/worker-$i.log" &
  pids+=($!)
done
echo "   logs:    $WORK/logs/"
echo "   metrics: http://127.0.0.1:9464/metrics (coordinator), http://127.0.0.1:9465/metrics .. :$((9464 + N)) (workers)"
echo "   Prometheus/Grafana: deploy/prometheus, deploy/grafana (see README)"

start=$(date +%s)
if ! wait "$coord"; then
  echo "coordinator failed; last log lines:" >&2
  tail -20 logs/coordinator.log >&2
  exit 1
fi
echo "== coordinator finished after $(($(date +%s) - start)) s"
cat logs/coordinator.out
echo "== audit"
"$FEDCHAIN" audit coordinator/ledger
"$FEDCHAIN" inspect coordinator/ledger
