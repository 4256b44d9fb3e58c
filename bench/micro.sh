#!/usr/bin/env bash
# Criterion micro-benchmarks of the hot paths (crate switchboard-bench, bench/benches/), then a
# Markdown table of the results with the date, machine and load they were measured under, on
# stdout. The figures are criterion's point estimates (the middle value of its `time:` line).
#
#   bash bench/micro.sh              # Env: MEASURE (seconds per bench, 3), WARMUP (1),
#                                    #      FILTER (criterion name filter, all by default)
#   QUICK=1 bash bench/micro.sh      # criterion --quick: seconds in all, noisier
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MEASURE=${MEASURE:-3}
WARMUP=${WARMUP:-1}
ARGS=(--warm-up-time "$WARMUP" --measurement-time "$MEASURE")
[[ -n "${QUICK:-}" ]] && ARGS=(--quick)
[[ -n "${FILTER:-}" ]] && ARGS+=("$FILTER")

load_before=$(cut -d' ' -f1 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
# Criterion keeps its results under the target directory; a stale one from an older run would
# be read as this run's, so start clean.
rm -rf "$TARGET_DIR/criterion"
cargo bench -q -p switchboard-bench -- "${ARGS[@]}" >&2
load_after=$(cut -d' ' -f1 /proc/loadavg)

echo "Micro-benchmarks, $started, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)),"
echo "load average $load_before before / $load_after after, $(rustc --version | cut -d' ' -f1-2);"
echo "\`cargo bench -p switchboard-bench -- ${ARGS[*]}\`:"
echo
python3 - "$TARGET_DIR/criterion" <<'EOF'
import json, pathlib, sys

def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"

rows = []
for bench in sorted(pathlib.Path(sys.argv[1]).glob("**/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    ns = (est.get("slope") or est["mean"])["point_estimate"]
    per = ""
    tp = meta.get("throughput") or {}
    if tp.get("Elements", 1) > 1:
        n = tp["Elements"]
        per = f"{fmt(ns / n)} each of {n} ({n / ns * 1e3:.3g} M/s)"
    elif "Elements" in tp:
        per = f"{1e3 / ns:.3g} M/s"
    elif "Bytes" in tp:
        per = f"{tp['Bytes'] / ns:.3g} GB/s"
    rows.append((meta["full_id"], fmt(ns), per))
print("| benchmark | time per iteration | per element / rate |")
print("|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
EOF
