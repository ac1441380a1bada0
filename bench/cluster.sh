#!/usr/bin/env bash
# Issue #6's bar: the wall time of a multi-process round (deploy/local-cluster: a coordinator and
# N workers talking mutual-TLS QUIC on loopback) against the in-process simulation of the same
# experiment (`fedchain simulate` with the coordinator's [experiment] table), per round and as a
# ratio (bar: <= 1.5x). Writes bench/results/cluster.json (OUT=... to change).
# Environment: N (hospitals, default 4), KEY_BITS (default 2048), ROUNDS (default 3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
N=${N:-4}
KEY_BITS=${KEY_BITS:-2048}
ROUNDS=${ROUNDS:-3}
out=${OUT:-$root/bench/results/cluster.json}
(cd "$root" && source scripts/setup.sh && cargo build --release -p fedchain >&2)
bin="${CARGO_TARGET_DIR:-$HOME/.cache/fedchain-target}/release/fedchain"
work=$(mktemp -d -t fedchain-cluster-bench.XXXXXX)
echo "== multi-process: deploy/local-cluster/run.sh $N (log: $work/cluster.log)" >&2
WORK="$work/cluster" KEY_BITS=$KEY_BITS ROUNDS=$ROUNDS FEDCHAIN="$bin" \
  bash "$root/deploy/local-cluster/run.sh" "$N" >"$work/cluster.log" 2>&1
# the same experiment in process: the [experiment] table (and its sub-tables) as a config
sed -n '/^\[experiment\]/,$p' "$work/cluster/coordinator.toml" |
  sed -e '/^\[experiment\]$/d' -e 's/^\[experiment\./[/' >"$work/experiment.toml"
validators=$(grep -o 'validator-[0-9]*' "$work/cluster/coordinator.toml" | sort -u | wc -l)
echo "== in process: fedchain simulate, $validators validators (log: $work/sim.log)" >&2
"$bin" simulate --config "$work/experiment.toml" --validators "$validators" --no-baseline \
  --force --out "$work/sim" >"$work/sim.log" 2>&1
python3 - "$work/cluster/logs/coordinator.log" "$work/sim/rounds.csv" "$out" "$N" "$KEY_BITS" <<'PY'
import csv, json, re, sys
from datetime import datetime
log, rounds_csv, out, n, key_bits = sys.argv[1:6]
opened, committed = {}, {}
for line in open(log):
    m = re.match(r"(\S+Z)\s+INFO .*round (opened|committed) round=(\d+)", line)
    if m:
        t = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
        (opened if m.group(2) == "opened" else committed)[int(m.group(3))] = t
multi = [committed[r] - opened[r] for r in sorted(committed) if r in opened]
sim = [float(row["total_s"]) for row in csv.DictReader(open(rounds_csv))]
if not multi or len(multi) != len(sim):
    sys.exit(f"rounds: {len(multi)} multi-process, {len(sim)} simulated")
mean = lambda xs: sum(xs) / len(xs)
ratio = mean(multi) / mean(sim)
res = {
    "what": "wall time per round: multi-process (round opened -> committed in the coordinator's log) vs fedchain simulate of the same experiment (rounds.csv total_s)",
    "hospitals": int(n), "key_bits": int(key_bits),
    "multi_process_s_per_round": multi, "simulate_s_per_round": sim,
    "mean_multi_process_s": mean(multi), "mean_simulate_s": mean(sim),
    "ratio": ratio, "bar": 1.5, "bar_met": ratio <= 1.5,
}
json.dump(res, open(out, "w"), indent=2)
print(f"multi-process {mean(multi):.3f} s/round, simulate {mean(sim):.3f} s/round: {ratio:.2f}x (bar 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}); wrote {out}")
PY
