#!/usr/bin/env bash
# Fuzzing runner: builds the cargo-fuzz targets of fuzz/ and runs each for a fixed time on its
# committed seed corpus, then writes the figures per target (execs, execs/s, corpus, coverage,
# crashes) as JSON and prints a table.
#
#   bench/fuzz.sh [-o OUT.json] [SECONDS_PER_TARGET (default 60)] [TARGET ...]
#   bench/fuzz.sh --gen-corpus     # rewrite the seed corpora with fuzz/src/bin/gen_corpus.rs
#
# OUT defaults to bench/results/fuzz.json. Exit status 1 if any target crashed (a panic, a
# timeout of one input above 10 s, or more than 2 GiB of memory); the input is kept in
# fuzz/artifacts/<target>/ (reproduce: the target binary with that file as its argument).
#
# libFuzzer writes the inputs it finds into fuzz/work/<target>/ (ignored by git), never into
# the committed fuzz/corpus/<target>/. FUZZ_SANITIZER=address builds with AddressSanitizer,
# which needs nightly flags: on a stable toolchain the script then sets RUSTC_BOOTSTRAP=1. The
# default (none) needs neither; Rust panics, overflows (debug assertions are on), timeouts and
# out-of-memory are caught either way. Cargo goes through `fcargo` (the machine's lock) when
# it exists; the fuzzers themselves run outside the lock, one at a time, RAYON_NUM_THREADS=1.
set -euo pipefail
cd "$(dirname "$0")/.."

out=bench/results/fuzz.json
gen=0
if [ "${1:-}" = "--gen-corpus" ]; then
  gen=1
  shift
fi
if [ "${1:-}" = "-o" ]; then
  out=$2
  shift 2
fi
secs=${1:-60}
shift || true

source scripts/setup.sh >&2
cargo_cmd=cargo
command -v fcargo >/dev/null 2>&1 && cargo_cmd=fcargo
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  $cargo_cmd install cargo-fuzz --locked >&2
fi
sanitizer=${FUZZ_SANITIZER:-none}
if [ "$sanitizer" != none ] && ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi

if [ "$gen" = 1 ]; then
  $cargo_cmd fuzz build -s "$sanitizer" gen_corpus >&2
  exec "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/gen_corpus"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list | grep -v '^gen_corpus$')
fi

build_start=$(date +%s)
$cargo_cmd fuzz build -s "$sanitizer" >&2
build_secs=$(($(date +%s) - build_start))
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0
for t in "${targets[@]}"; do
  work=fuzz/work/$t
  art=fuzz/artifacts/$t
  rm -rf "$work" "$art"
  mkdir -p "$work" "$art"
  echo "fuzz: $t for ${secs}s" >&2
  start=$(date +%s.%N)
  rc=0
  RAYON_NUM_THREADS=1 "$bin/$t" "$work" "fuzz/corpus/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" >"$logs/$t.out" 2>"$logs/$t.log" || rc=$?
  end=$(date +%s.%N)
  echo "$start $end $rc" >"$logs/$t.time"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "fuzz: $t FAILED (exit $rc); last lines of its log:" >&2
    tail -n 30 "$logs/$t.log" >&2
  fi
done

python3 - "$out" "$logs" "$secs" "$build_secs" "$sanitizer" "${targets[@]}" <<'PY'
import json, os, re, sys, platform
out, logs, secs, build_secs, sanitizer, *targets = sys.argv[1:]
rows = []
for t in targets:
    log = open(os.path.join(logs, t + ".log"), errors="replace").read()
    start, end, rc = open(os.path.join(logs, t + ".time")).read().split()
    stat = dict(re.findall(r"^stat::(\w+):\s+(\d+)", log, re.M))
    # the last status line: "#N  DONE  cov: C ft: F corp: U/Sb ..."
    status = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/(\d+)(b|Kb|Mb)", log)
    cov, ft, units, size, unit = status[-1] if status else (0, 0, 0, 0, "b")
    size = int(size) * {"b": 1, "Kb": 1024, "Mb": 1 << 20}[unit]
    seed_dir = os.path.join("fuzz/corpus", t)
    seeds = [os.path.join(seed_dir, f) for f in os.listdir(seed_dir)]
    art_dir = os.path.join("fuzz/artifacts", t)
    artifacts = sorted(os.listdir(art_dir)) if os.path.isdir(art_dir) else []
    crash = [a for a in artifacts if re.match(r"(crash|timeout|oom|leak)-", a)]
    execs = int(stat.get("number_of_executed_units", 0))
    wall = float(end) - float(start)
    rows.append({
        "target": t,
        "seconds": round(wall, 1),
        "total_execs": execs,
        "execs_per_sec": int(stat.get("average_exec_per_sec", 0)),
        "seed_inputs": len(seeds),
        "seed_bytes": sum(os.path.getsize(p) for p in seeds),
        "corpus_units": int(units),
        "corpus_bytes": size,
        "new_units": int(stat.get("new_units_added", 0)),
        "coverage_edges": int(cov),
        "features": int(ft),
        "peak_rss_mb": int(stat.get("peak_rss_mb", 0)),
        "exit_status": int(rc),
        "crashes": len(crash),
        "artifacts": [os.path.join(art_dir, a) for a in crash],
    })
findings_path = "fuzz/findings.json"
findings = json.load(open(findings_path)) if os.path.exists(findings_path) else []
load = os.getloadavg()
result = {
    "what": "cargo-fuzz (libFuzzer) targets of fuzz/, each run for a fixed time on its committed seed corpus (bench/fuzz.sh)",
    "seconds_per_target": int(secs),
    "sanitizer": sanitizer,
    "build_seconds": int(build_secs),
    "machine": {
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in load],
        "note": "shared 2-core machine: other builds ran at the same time, so execs/s are lower than on an idle one",
        "platform": platform.platform(),
    },
    "targets": rows,
    "crashes_found_and_fixed_note": "from fuzz/findings.json: crashes earlier runs of these targets found while they were written, each fixed in the real code with a regression test next to the decoder and its input kept in the seed corpus (so every run, CI's included, replays it); 'crashes' per target above counts this run only",
    "crashes_found_and_fixed": findings,
}
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
hdr = f"{'target':16} {'s':>6} {'execs':>10} {'execs/s':>8} {'seeds':>5} {'corpus':>6} {'cov':>6} {'crashes':>7}"
print(hdr)
print("-" * len(hdr))
for r in rows:
    print(f"{r['target']:16} {r['seconds']:6.1f} {r['total_execs']:10d} {r['execs_per_sec']:8d} "
          f"{r['seed_inputs']:5d} {r['corpus_units']:6d} {r['coverage_edges']:6d} {r['crashes']:7d}")
print(f"build {build_secs}s; results in {out}")
PY
exit $status
