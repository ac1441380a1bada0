#!/usr/bin/env bash
# A consortium on one machine: V validator processes (each its own key, RocksDB replica and
# engine journal), one coordinator (the aggregator: a client of the validators, no validator
# key) and N hospital workers on loopback, from a freshly generated PKI.
#
#   deploy/local-cluster/run.sh [N] [V]      (default N = 4, V = 4; needs N >= 3, V >= 1;
#                                             V >= 4 tolerates one faulty validator)
#
# Environment: WORK (cluster directory, default a new temp dir), KEY_BITS (default 2048; 512
# is fine for a quick look), ROUNDS (default 3), FEDCHAIN (use this binary instead of building
# the release one). WORK (logs, ledger, bundles) is kept after exit.
#
# Steps: build the release binary; `fedchain ca init`; every participant (the aggregator, V
# validators, N hospitals) runs `fedchain keys new` in its own directory bundles/<name> (its
# secrets never leave it), its request.json travels to requests/, the CA runs `ca issue
# --request` into issued/<name> (public files only), the participant runs `keys install`;
# the dealer runs `fedchain keygen` with t = floor(N/3) + 1 on the hospitals' issued/ files
# (public), sealing each share to its hospital into job/shares/; `fedchain genesis` writes
# job/genesis.json from the aggregator's and validators' issued/ files (its hash is the chain
# id every participant signs with); write validator-i.toml (p2p on 7500+i, members' QUIC on
# 7600+i), coordinator.toml and one worker-i.toml per hospital from the templates next to this
# script; start the validators, the coordinator and the workers with metrics on 9464
# (coordinator) and 9465.. (workers); wait for the rounds; `fedchain audit --genesis <chain
# id>` the coordinator's ledger and every validator's; stop everything on exit (trap). On one machine the directories stand
# for the parties' machines: bundles/<name> is the participant's, ca/ the CA's, job/ is what
# the dealer hands everyone.
set -euo pipefail

N=${1:-4}
V=${2:-4}
if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 3)) || ! [[ "$V" =~ ^[0-9]+$ ]] || ((V < 1)); then
  echo "usage: $0 [N >= 3] [V >= 1]" >&2
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

echo "== consortium in $WORK: $N hospitals, threshold $T, $V validators, $KEY_BITS-bit key, $ROUNDS rounds"
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
validators=()
for ((v = 0; v < V; v++)); do
  participant "validator-$v" validator
  validators+=(--validator "issued/validator-$v")
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
  --aggregator issued/aggregator "${validators[@]}")
echo "$genesis"
chain_id=$(awk '/^chain id/ { print $NF }' <<<"$genesis")

experiment() {
  sed -e "s/^hospitals = .*/hospitals = $N/" -e "s/^threshold = .*/threshold = $T/" \
    -e "s/^rounds = .*/rounds = $ROUNDS/" -e "s/^key_bits = .*/key_bits = $KEY_BITS/" "$1"
}
# the validators' p2p addresses (genesis order) and the coordinator's endpoints of them
p2p=""
chain=""
for ((v = 0; v < V; v++)); do
  p2p+="${p2p:+, }\"127.0.0.1:$((7500 + v))\""
  chain+="  { name = \"validator-$v\", address = \"127.0.0.1:$((7600 + v))\" },"$'\n'
done
for ((v = 0; v < V; v++)); do
  sed -e "s/validator-0/validator-$v/g" -e "s/^p2p = .*/p2p = \"127.0.0.1:$((7500 + v))\"/" \
    -e "s/^listen = .*/listen = \"127.0.0.1:$((7600 + v))\"/" \
    -e "s/^validators = .*/validators = [$p2p]/" "$here/validator.toml" > "validator-$v.toml"
done
# a config's `chain = [...]` list replaced by these endpoints
with_chain() {
  awk -v chain="$chain" '/^chain = \[/ { print "chain = ["; printf "%s", chain; skip = 1; next }
    skip && /^\]/ { skip = 0 } !skip'
}
experiment "$here/coordinator.toml" | with_chain > coordinator.toml
mkdir -p logs
for ((i = 0; i < N; i++)); do
  experiment "$here/worker.toml" | sed -e "s/hospital-0/hospital-$i/g" \
    -e "s/^metrics = .*/metrics = \"127.0.0.1:$((9465 + i))\"/" | with_chain > "worker-$i.toml"
done

echo "== starting $V validators, the coordinator and $N workers"
vpids=()
for ((v = 0; v < V; v++)); do
  "$FEDCHAIN" validator --config "validator-$v.toml" > "logs/validator-$v.out" 2> "logs/validator-$v.log" &
  pids+=($!)
  vpids+=($!)
done
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
echo "== audit (the aggregator's ledger, then every validator's replica)"
"$FEDCHAIN" audit coordinator/ledger --genesis "$chain_id"
"$FEDCHAIN" inspect coordinator/ledger
# the validators stop on SIGTERM (what is final is on disk); then each replica is audited
kill -TERM "${vpids[@]}" 2>/dev/null || true
for p in "${vpids[@]}"; do wait "$p" || true; done
for ((v = 0; v < V; v++)); do
  echo "validator-$v: $("$FEDCHAIN" audit "validator-$v/ledger" --genesis "$chain_id" | tail -1)"
done
