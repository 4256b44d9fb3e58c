#!/usr/bin/env bash
# Conferences side by side with `loadtest conference`: Switchboard's SFU (one worker), then
# Debian's Janus videoroom (bench/peers/janus.sh, in its own network namespace), same rooms,
# same synthetic Opus + 3-layer simulcast VP8 load; each server pinned to core 0, the load
# generator on core 1. Prints `loadtest compare` (the row to read: server CPU µs per forwarded
# packet) and leaves the JSON/HTML reports and per-track CSVs in OUT.
#
#   bash bench/conference.sh
#
# Env: ROOMS (2), PARTICIPANTS (6), DURATION (20s), RAMP_UP (3s), VIDEO_KBPS (150,500,1500),
#      FPS (30), OUT (default bench/results/conference-DATE), BIN (prebuilt binaries' directory),
#      PEERS ("janus"; empty: Switchboard only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROOMS=${ROOMS:-2}
PARTICIPANTS=${PARTICIPANTS:-6}
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

flags=(--rooms "$ROOMS" --participants "$PARTICIPANTS" --duration "$DURATION" --ramp-up "$RAMP_UP"
  --video-kbps "$VIDEO_KBPS" --fps "$FPS" --quiet)

echo "== Switchboard (core $SERVER_CORE, 1 SFU worker)"
mkdir -p "$WORK/sb"
taskset -c "$SERVER_CORE" env RUST_LOG=warn "$BIN/switchboard" serve --data-dir "$WORK/sb" \
  --roles api,sfu --http-addr "127.0.0.1:$SB_HTTP" --https-addr 127.0.0.1:0 --sfu-addr 127.0.0.1:0 \
  --sfu-workers 1 --sfu-grant-secret "$SECRET" >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
SB_PID=$!
for _ in $(seq 300); do grep -q '^Switchboard ready' "$WORK/sb/banner.txt" && break; sleep 0.1; done
taskset -c "$LOAD_CORE" "$BIN/loadtest" conference --target "ws://127.0.0.1:$SB_HTTP/janus" \
  --grant-secret "$SECRET" "${flags[@]}" --server-pid "$SB_PID" \
  --out "$OUT/conference-switchboard.json" --html "$OUT/conference-switchboard.html" \
  --tracks "$OUT/tracks-switchboard.csv"
kill "$SB_PID"
wait "$SB_PID" || true
SB_PID=""

for peer in $PEERS; do
  case "$peer" in
  janus)
    echo "== Janus $(dpkg-query -W -f='${Version}' janus 2>/dev/null || echo '(installing)') (core $SERVER_CORE)"
    read -r JANUS_PID _ _ NETNS < <(bash "$ROOT/bench/peers/janus.sh" start "$WORK/janus" "$JANUS_WS" "$SERVER_CORE")
    ip netns exec "$NETNS" taskset -c "$LOAD_CORE" "$BIN/loadtest" conference \
      --target "ws://127.0.0.1:$JANUS_WS/janus" --media-ip 198.18.0.2 "${flags[@]}" \
      --server-pid "$JANUS_PID" --out "$OUT/conference-janus.json" \
      --html "$OUT/conference-janus.html" --tracks "$OUT/tracks-janus.csv"
    bash "$ROOT/bench/peers/janus.sh" stop "$WORK/janus"
    echo "== conference: Switchboard (a) vs Janus (b), $ROOMS rooms × $PARTICIPANTS participants"
    "$BIN/loadtest" compare "$OUT/conference-switchboard.json" "$OUT/conference-janus.json" \
      | tee "$OUT/conference-vs-janus.txt"
    ;;
  *) echo "unknown peer $peer" >&2; exit 2 ;;
  esac
done
echo "reports: $OUT"
