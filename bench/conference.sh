#!/usr/bin/env bash
# Conferences side by side with `loadtest conference`: Switchboard's SFU (one worker), then
# Debian's Janus videoroom (bench/peers/janus.sh, in its own network namespace), same rooms,
# same synthetic Opus + 3-layer simulcast VP8 load; each server pinned to core 0, the load
# generator on core 1, for each room shape in RUNS. Prints `loadtest compare` per run (the row
# to read: server CPU µs per forwarded packet) and the table of all runs, and leaves the
# JSON/HTML reports and per-track CSVs in OUT.
#
#   bash bench/conference.sh            # prints the tables
#   bash bench/conference.sh --readme   # also rewrites the conference block of README.md's
#                                       # Performance section (README_FILE: another file)
#
# Env: RUNS (room shapes ROOMSxPARTICIPANTS, default "2x6 1x12"; ROOMS and PARTICIPANTS, if set,
#      give one shape instead), DURATION (20s), RAMP_UP (3s), VIDEO_KBPS (150,500,1500),
#      FPS (30), OUT (default bench/results/conference-DATE), BIN (prebuilt binaries' directory),
#      PEERS ("janus"; empty: Switchboard only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -n "${ROOMS:-}${PARTICIPANTS:-}" ]]; then
  RUNS="${ROOMS:-2}x${PARTICIPANTS:-6}"
fi
RUNS=${RUNS:-2x6 1x12}
README_FILE=${README_FILE:-$ROOT/README.md}
README=0
[[ "${1:-}" == "--readme" ]] && README=1
DURATION=${DURATION:-20s}
RAMP_UP=${RAMP_UP:-3s}
VIDEO_KBPS=${VIDEO_KBPS:-150,500,1500}
FPS=${FPS:-30}
PEERS=${PEERS-janus}
OUT=${OUT:-$ROOT/bench/results/conference-$(date -u +%Y%m%dT%H%M%SZ)}
SECRET=bench-conference-secret
SB_HTTP=18080
JANUS_WS=18188
SERVER_CORE=0
LOAD_CORE=1

if [[ -z "${BIN:-}" ]]; then
  cargo build --release -q -p switchboard -p loadtest
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
fi
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-conference.XXXXXX")"
SB_PID=""
cleanup() {
  if [[ -n "$SB_PID" ]]; then kill "$SB_PID" 2>/dev/null || true; fi
  bash "$ROOT/bench/peers/janus.sh" stop "$WORK/janus" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

LOAD=$(cut -d' ' -f1 /proc/loadavg)
JANUS_VERSION=""
echo "Conferences: runs $RUNS, $DURATION each; load average $LOAD"

# one_run ROOMS PARTICIPANTS: Switchboard, then each peer, same load.
one_run() {
  local rooms=$1 participants=$2 run="$1x$2" peer flags
  flags=(--rooms "$rooms" --participants "$participants" --duration "$DURATION" --ramp-up "$RAMP_UP"
    --video-kbps "$VIDEO_KBPS" --fps "$FPS" --quiet)
  echo "== $run: Switchboard (core $SERVER_CORE, 1 SFU worker)"
  rm -rf "$WORK/sb" && mkdir -p "$WORK/sb"
  taskset -c "$SERVER_CORE" env RUST_LOG=warn "$BIN/switchboard" serve --data-dir "$WORK/sb" \
    --roles api,sfu --http-addr "127.0.0.1:$SB_HTTP" --https-addr 127.0.0.1:0 --sfu-addr 127.0.0.1:0 \
    --sfu-workers 1 --sfu-grant-secret "$SECRET" >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
  SB_PID=$!
  for _ in $(seq 300); do grep -q '^Switchboard ready' "$WORK/sb/banner.txt" && break; sleep 0.1; done
  taskset -c "$LOAD_CORE" "$BIN/loadtest" conference --target "ws://127.0.0.1:$SB_HTTP/janus" \
    --grant-secret "$SECRET" "${flags[@]}" --server-pid "$SB_PID" \
    --out "$OUT/conference-$run-switchboard.json" --html "$OUT/conference-$run-switchboard.html" \
    --tracks "$OUT/tracks-$run-switchboard.csv" || true
  kill "$SB_PID"
  wait "$SB_PID" || true
  SB_PID=""

  for peer in $PEERS; do
    case "$peer" in
    janus)
      echo "== $run: Janus $(dpkg-query -W -f='${Version}' janus 2>/dev/null || echo '(installing)') (core $SERVER_CORE)"
      read -r JANUS_PID _ _ NETNS < <(bash "$ROOT/bench/peers/janus.sh" start "$WORK/janus" "$JANUS_WS" "$SERVER_CORE")
      JANUS_VERSION=$(dpkg-query -W -f='${Version}' janus | sed 's/-.*//')
      ip netns exec "$NETNS" taskset -c "$LOAD_CORE" "$BIN/loadtest" conference \
        --target "ws://127.0.0.1:$JANUS_WS/janus" --media-ip 198.18.0.2 "${flags[@]}" \
        --server-pid "$JANUS_PID" --out "$OUT/conference-$run-janus.json" \
        --html "$OUT/conference-$run-janus.html" --tracks "$OUT/tracks-$run-janus.csv" || true
      bash "$ROOT/bench/peers/janus.sh" stop "$WORK/janus"
      if [[ -s "$OUT/conference-$run-switchboard.json" && -s "$OUT/conference-$run-janus.json" ]]; then
        echo "== conference: Switchboard (a) vs Janus (b), $rooms rooms × $participants participants"
        "$BIN/loadtest" compare "$OUT/conference-$run-switchboard.json" "$OUT/conference-$run-janus.json" \
          | tee "$OUT/conference-$run-vs-janus.txt"
      fi
      ;;
    *) echo "unknown peer $peer" >&2; exit 2 ;;
    esac
  done
}

for run in $RUNS; do
  [[ "$run" =~ ^[0-9]+x[0-9]+$ ]] || { echo "RUNS: $run is not ROOMSxPARTICIPANTS" >&2; exit 2; }
  one_run "${run%x*}" "${run#*x}"
done

python3 "$ROOT/bench/tables.py" conference "$OUT" "$RUNS" "$PEERS" "${JANUS_VERSION:-?}" >"$OUT/conference-table.md"
echo
cat "$OUT/conference-table.md"

if [[ $README == 1 ]]; then
  {
    python3 "$ROOT/bench/tables.py" --header bench/conference.sh "Conferences" "$LOAD" \
      "RUNS=\"$RUNS\" DURATION=$DURATION RAMP_UP=$RAMP_UP VIDEO_KBPS=$VIDEO_KBPS FPS=$FPS PEERS=\"$PEERS\"" \
      "\`loadtest conference\`: str0m peers joining through the Janus videoroom API over WebSocket, each publishing Opus 40 kbit/s + VP8 simulcast at VIDEO_KBPS kbit/s and FPS fps and subscribing to every other feed; Switchboard with one SFU worker, Debian's Janus through \`bench/peers/janus.sh\` (its own network namespace on 198.18.0.1: Janus offers no loopback candidates); server on core 0, load on core 1; packet rates and CPU per packet over the whole run, ramp-up and handshakes included"
    cat "$OUT/conference-table.md"
  } >"$OUT/conference-block.md"
  python3 "$ROOT/bench/readme_block.py" "$README_FILE" conference-bench "$OUT/conference-block.md"
  echo "$README_FILE: conference block rewritten"
fi
echo "reports: $OUT"
