#!/usr/bin/env bash
# A consortium on one machine: one coordinator (aggregator + ledger + in-process validator
# replicas) and N hospital workers on loopback, from a freshly generated PKI.
#
#   deploy/local-cluster/run.sh [N]          (default N = 4; needs N >= 3)
#
# Environment: WORK (cluster directory, default a new temp dir), KEY_BITS (default 2048; 512
# is fine for a quick look), ROUNDS (default 3), FEDCHAIN (use this binary instead of building
# the release one). WORK (logs, ledger, bundles) is kept after exit.
#
# Steps: build the release binary; `fedchain ca init`; every participant (the aggregator, 3
# validators, N hospitals) runs `fedchain keys new` in its own directory bundles/<name> (its
# secrets never leave it), its request.json travels to requests/, the CA runs `ca issue
# --request` into issued/<name> (public files only), the participant runs `keys install`;
# the dealer runs `fedchain keygen` with t = floor(N/3) + 1 on the hospitals' issued/ files
# (public), sealing each share to its hospital into job/shares/; `fedchain genesis` writes
# job/genesis.json from the aggregator's and validators' issued/ files (its hash is the chain
# id every participant signs with); write coordinator.toml and
# one worker-i.toml per hospital from the templates next to this script; start everything with
# metrics on 9464 (coordinator) and 9465.. (workers); wait for the rounds; `fedchain audit
# --genesis <chain id>` the coordinator's ledger; stop everything on exit (trap). On one machine the directories stand
# for the parties' machines: bundles/<name> is the participant's, ca/ the CA's, job/ is what
# the dealer hands everyone.
set -euo pipefail

N=${1:-4}
if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 3)); then
  echo "usage: $0 [N >= 3]" >&2
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
mkdir -p bundles requests issued
# participant NAME ROLE: its own keys, the CA certifies its request, it installs the result
participant() {
  "$FEDCHAIN" keys new --name "$1" --role "$2" --out "bundles/$1"                   # participant
  cp "bundles/$1/request.json" "requests/$1.json"                                   # -> CA
  "$FEDCHAIN" ca issue --dir ca --request "requests/$1.json" --out "issued/$1"      # CA
  "$FEDCHAIN" keys install --key-dir "bundles/$1" --cert-dir "issued/$1"            # participant
}
participant aggregator aggregator
for v in 0 1 2; do
  participant "validator-$v" validator
done
hospitals=()
for ((i = 0; i < N; i++)); do
  participant "hospital-$i" hospital
  hospitals+=(--hospital "issued/hospital-$i")
done
# the dealer reads only public files and seals each share to its hospital (job/shares/)
"$FEDCHAIN" keygen --job-dir job --threshold "$T" --key-bits "$KEY_BITS" \
  --ca-cert ca/ca.cert.pem --crl ca/crl.pem "${hospitals[@]}"
# the genesis (validators, allocations, time, a random nonce), from public files only: its hash
# is the chain id; it travels with the job directory
genesis=$("$FEDCHAIN" genesis --job-dir job --ca-cert ca/ca.cert.pem --crl ca/crl.pem \
  --aggregator issued/aggregator --validator issued/validator-0 --validator issued/validator-1 \
  --validator issued/validator-2)
echo "$genesis"
chain=$(awk '/^chain id/ { print $NF }' <<<"$genesis")

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
"$FEDCHAIN" audit coordinator/ledger --genesis "$chain"
"$FEDCHAIN" inspect coordinator/ledger
