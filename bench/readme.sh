#!/usr/bin/env bash
# Regenerates README.md's whole Performance section: every generated block, one script after
# the other, on this machine (each server pinned to core 0, the load on core 1), after one
# release build. Nothing in that section's figures is written by hand.
#
#   bash bench/readme.sh            # the full run (15-20 minutes after the build), rewrites README.md
#   bash bench/readme.sh --quick    # tiny durations to check the scripts work (a few minutes);
#                                   # writes a copy, OUT/README.md, never README.md itself
#
# On a shared machine run it under the team's build lock (it builds and it loads both cores):
#   flock /tmp/team/cargo.lock bash bench/readme.sh
#
# Steps, in order (each writes its block between its markers in README_FILE):
#   chat           bash bench/compare.sh --readme        chat vs Prosody and ejabberd, REST  (chat-bench)
#   turn           bash bench/turn.sh --readme           TURN relay vs coturn, turnutils     (turn-bench)
#   turn-loadtest  bash bench/turn-loadtest.sh --readme  TURN allocations + relay vs coturn  (turn-loadtest-bench)
#   conference     bash bench/conference.sh --readme     SFU vs Janus                        (conference-bench)
#   micro          bash bench/micro.sh --readme          criterion micro-benchmarks          (micro-bench)
# and the section's first block (perf-run): date, commit, machine, load average, steps run.
#
# Env: STEPS (subset of the steps above, in that order; default all), README_FILE (default
#      README.md, with --quick OUT/README.md copied from README.md), OUT (reports, default
#      bench/results/readme-DATE), SETTLE (seconds to wait after the build so its load decays,
#      60; --quick 0), BIN (a directory with release switchboard and loadtest already built:
#      skips that build; the micro step still builds its benches). Every script's own knobs pass through: unprefixed (e.g. DURATION) they
#      reach every step, prefixed with the step's name they reach only that step and win:
#      CHAT_ (compare.sh), TURN_ (turn.sh), TURNLT_ (turn-loadtest.sh), CONF_ (conference.sh),
#      MICRO_ (micro.sh), e.g. `CHAT_RATES="500 1000" CONF_RUNS=1x12 bash bench/readme.sh`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK=0
case "${1:-}" in
--quick) QUICK=1 ;;
"") ;;
*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
ALL_STEPS="chat turn turn-loadtest conference micro"
STEPS=${STEPS:-$ALL_STEPS}
OUT=${OUT:-$ROOT/bench/results/readme-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
if [[ $QUICK == 1 ]]; then
  SETTLE=${SETTLE:-0}
  if [[ -z "${README_FILE:-}" ]]; then
    README_FILE="$OUT/README.md"
    cp "$ROOT/README.md" "$README_FILE"
  fi
else
  SETTLE=${SETTLE:-60}
  README_FILE=${README_FILE:-$ROOT/README.md}
fi
[[ -f "$README_FILE" ]] || cp "$ROOT/README.md" "$README_FILE"
export README_FILE
for step in $STEPS; do
  [[ " $ALL_STEPS " == *" $step "* ]] || { echo "STEPS: unknown step $step (one of: $ALL_STEPS)" >&2; exit 2; }
done

# Quick mode's knobs (a step's prefixed variable set by the caller still wins).
QUICK_KNOBS=(
  CHAT_CLIENTS=20 'CHAT_RATES=100 200' CHAT_DURATION=10s CHAT_IDLE=50
  TURN_CLIENTS=4 TURN_MSGS=200 TURN_ROUNDS=1
  TURNLT_CLIENTS=4 TURNLT_RATE=1000 TURNLT_ALLOC_CLIENTS=4 TURNLT_DURATION=4s TURNLT_RAMP_UP=1s
  CONF_RUNS=1x3 CONF_DURATION=8s CONF_RAMP_UP=2s
  MICRO_QUICK=1
)
if [[ $QUICK == 1 ]]; then
  for kv in "${QUICK_KNOBS[@]}"; do
    name=${kv%%=*}
    if [[ -z "${!name:-}" ]]; then export "${kv?}"; fi
  done
fi

# step_env PREFIX: `NAME=value` for every PREFIX_NAME in the environment.
step_env() {
  local var
  while read -r var; do
    printf '%s\0' "${var#"$1"_}=${!var}"
  done < <(compgen -e | grep "^$1_" || true)
}

LOAD=$(cut -d' ' -f1 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ -n "${BIN:-}" ]]; then
  echo "== prebuilt switchboard and loadtest from $BIN (no release build)"
else
  echo "== build (release: switchboard, loadtest)"
  cargo build --release -q -p switchboard -p loadtest
  BIN="$TARGET_DIR/release"
fi
for b in switchboard loadtest; do
  [[ -x "$BIN/$b" ]] || { echo "$BIN/$b: no such binary" >&2; exit 1; }
done
export BIN
export SB_BIN="$BIN/switchboard"
if [[ " $STEPS " == *" micro "* ]]; then
  echo "== build (benches: switchboard-bench)"
  cargo bench -q -p switchboard-bench --no-run
fi
if [[ "$SETTLE" -gt 0 ]]; then
  echo "== waiting ${SETTLE}s for the build's load to decay (load average $(cut -d' ' -f1 /proc/loadavg))"
  sleep "$SETTLE"
fi

FAILED=()
# run STEP PREFIX SCRIPT: the step's script with --readme, its prefixed knobs, reports in OUT/STEP.
run() {
  local step=$1 prefix=$2 script=$3 knobs=()
  [[ " $STEPS " == *" $step "* ]] || return 0
  mapfile -d '' knobs < <(step_env "$prefix")
  echo
  echo "== $step: bash $script --readme ${knobs[*]}"
  if ! env OUT="$OUT/$step" "${knobs[@]}" bash "$ROOT/$script" --readme 2>&1 | tee "$OUT/$step.log"; then
    echo "== $step FAILED (log: $OUT/$step.log)" >&2
    FAILED+=("$step")
  fi
}

run chat CHAT bench/compare.sh
run turn TURN bench/turn.sh
run turn-loadtest TURNLT bench/turn-loadtest.sh
run conference CONF bench/conference.sh
run micro MICRO bench/micro.sh

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then commit="$commit with local changes"; fi
{
  echo "<!-- bench/readme.sh: generated block, do not edit by hand -->"
  echo "Generated by \`bash bench/readme.sh$([[ $QUICK == 1 ]] && echo ' --quick')\` (started $STARTED, load average $LOAD"
  echo "at the start; commit $commit; $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1),"
  echo "Linux $(uname -r), $(rustc --version | cut -d' ' -f1-2); steps: $STEPS$([[ ${#FAILED[@]} -gt 0 ]] && echo "; **failed: ${FAILED[*]}**")):"
  echo "each block below was written by its script in this run unless its own date says otherwise."
} >"$OUT/perf-run-block.md"
python3 "$ROOT/bench/readme_block.py" "$README_FILE" perf-run "$OUT/perf-run-block.md"

echo
echo "README: $README_FILE; reports and logs: $OUT"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "failed steps: ${FAILED[*]}" >&2
  exit 1
fi
