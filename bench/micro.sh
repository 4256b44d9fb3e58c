#!/usr/bin/env bash
# Criterion micro-benchmarks of the hot paths (crate switchboard-bench, bench/benches/), then
# Markdown tables of the results (bench/tables.py micro: issue 10's named hot paths, the parts
# of one unit of work beside the per-unit budget the targets leave, every other benchmark) with
# the date, machine and load they were measured under, on stdout. The figures are criterion's
# point estimates (slope, else mean) from $CARGO_TARGET_DIR/criterion/*/new/estimates.json.
#
#   bash bench/micro.sh              # Env: MEASURE (seconds per bench, 3), WARMUP (1),
#                                    #      FILTER (criterion name filter, all by default)
#   QUICK=1 bash bench/micro.sh      # criterion --quick: seconds in all, noisier
#   bash bench/micro.sh --readme     # also rewrites the micro-benchmark block of README.md's
#                                    # Performance section (README_FILE: another file)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
README_FILE=${README_FILE:-$ROOT/README.md}
README=0
[[ "${1:-}" == "--readme" ]] && README=1
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

machine="$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(rustc --version | cut -d' ' -f1-2)"
TABLE="$(mktemp "${TMPDIR:-/tmp}/switchboard-micro.XXXXXX")"
trap 'rm -f "$TABLE"' EXIT
python3 "$ROOT/bench/tables.py" micro "$TARGET_DIR/criterion" >"$TABLE"
echo "Micro-benchmarks, $started, $machine, load average $load_before before / $load_after after;"
echo "\`cargo bench -p switchboard-bench -- ${ARGS[*]}\`:"
echo
cat "$TABLE"

if [[ $README == 1 ]]; then
  params="MEASURE=$MEASURE WARMUP=$WARMUP${QUICK:+ QUICK=$QUICK}${FILTER:+ FILTER=$FILTER}"
  block="$TABLE.block"
  {
    python3 "$ROOT/bench/tables.py" --header bench/micro.sh "Micro-benchmarks" "$load_before" "$params" \
      "criterion (\`cargo bench -p switchboard-bench -- ${ARGS[*]}\`, \`bench/benches/\`), not pinned, on $machine, load average $load_after at the end; point estimates per iteration, the user-space hot paths beside the kernel's cost of one datagram on loopback"
    cat "$TABLE"
  } >"$block"
  python3 "$ROOT/bench/readme_block.py" "$README_FILE" micro-bench "$block"
  rm -f "$block"
  echo "$README_FILE: micro-benchmark block rewritten" >&2
fi
