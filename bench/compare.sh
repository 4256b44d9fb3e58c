#!/usr/bin/env bash
# Side-by-side chat runs on loopback, in one run, with the same load: Switchboard, then
# Debian's Prosody and ejabberd, each pinned to core 0 with the load generator on core 1. Prints the
# ratio table and leaves the JSON/HTML reports in OUT (default bench/results/DATE).
#
#   bash bench/compare.sh
#
# Env: CLIENTS (chatting users, 200), RATE (msgs/s in total, 4000), ROOM_SIZE (0: 1:1 only),
#      IDLE (idle connections for RSS per connection, 1000), DURATION (20s), OUT.
# Switchboard ends a stream above 50 stanzas/s per connection: keep RATE/CLIENTS below 45.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLIENTS=${CLIENTS:-200}
RATE=${RATE:-4000}
ROOM_SIZE=${ROOM_SIZE:-0}
IDLE=${IDLE:-1000}
DURATION=${DURATION:-20s}
OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
SERVER_CORE=0
LOAD_CORE=1
PROSODY_PORT=15222
EJABBERD_PORT=15223

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -q -p switchboard -p loadtest
BIN="$TARGET_DIR/release"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")"
chmod 755 "$WORK"
SB_PID=""
cleanup() {
  if [[ -n "$SB_PID" ]]; then kill "$SB_PID" 2>/dev/null || true; fi
  bash "$ROOT/bench/peers/prosody.sh" stop "$WORK/prosody" || true
  bash "$ROOT/bench/peers/ejabberd.sh" stop "$WORK/ejabberd" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

load() { taskset -c "$LOAD_CORE" "$BIN/loadtest" "$@"; }
chat_flags=(--clients "$CLIENTS" --rate "$RATE" --room-size "$ROOM_SIZE" --idle "$IDLE"
  --duration "$DURATION" --ramp-up 5s --quiet)

echo "== Switchboard (core $SERVER_CORE)"
mkdir -p "$WORK/sb"
taskset -c "$SERVER_CORE" env RUST_LOG=warn "$BIN/switchboard" serve --data-dir "$WORK/sb" \
  --roles api,xmpp --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 --xmpp-addr 127.0.0.1:0 \
  >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
SB_PID=$!
for _ in $(seq 300); do grep -q '^Switchboard ready' "$WORK/sb/banner.txt" && break; sleep 0.1; done
banner() { awk -v k="$1" 'index($0, k) { print $NF; exit }' "$WORK/sb/banner.txt"; }
HTTP=$(banner "REST API (HTTP)")
XMPP=$(banner "XMPP (TCP)")
APP=(--app-id "$(banner 'application id')" --auth-key "$(banner 'auth key')" --auth-secret "$(banner 'auth secret')")
load chat --target "$XMPP" --api "$HTTP" "${APP[@]}" "${chat_flags[@]}" --server-pid "$SB_PID" \
  --out "$OUT/chat-switchboard.json" --html "$OUT/chat-switchboard.html"
load api --target "$HTTP" "${APP[@]}" --clients 32 --rate 0 --duration "$DURATION" --ramp-up 2s \
  --quiet --server-pid "$SB_PID" --out "$OUT/api-switchboard.json" --html "$OUT/api-switchboard.html"
kill "$SB_PID"
wait "$SB_PID" || true
SB_PID=""

echo "== Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo '(installing)') (core $SERVER_CORE)"
mkdir -p "$WORK/prosody"
PROSODY_PID=$(bash "$ROOT/bench/peers/prosody.sh" start "$WORK/prosody" "$PROSODY_PORT" "$CLIENTS" "$SERVER_CORE")
load chat --target "127.0.0.1:$PROSODY_PORT" --users "$WORK/prosody/users.txt" "${chat_flags[@]}" \
  --server-pid "$PROSODY_PID" --out "$OUT/chat-prosody.json" --html "$OUT/chat-prosody.html"
bash "$ROOT/bench/peers/prosody.sh" stop "$WORK/prosody"

echo "== ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo '(installing)') (core $SERVER_CORE)"
mkdir -p "$WORK/ejabberd"
EJABBERD_PID=$(bash "$ROOT/bench/peers/ejabberd.sh" start "$WORK/ejabberd" "$EJABBERD_PORT" "$CLIENTS" "$SERVER_CORE")
load chat --target "127.0.0.1:$EJABBERD_PORT" --users "$WORK/ejabberd/users.txt" "${chat_flags[@]}" \
  --server-pid "$EJABBERD_PID" --out "$OUT/chat-ejabberd.json" --html "$OUT/chat-ejabberd.html"
bash "$ROOT/bench/peers/ejabberd.sh" stop "$WORK/ejabberd"

echo "== chat: Switchboard (a) vs Prosody (b), $CLIENTS users, $RATE msgs/s, rooms of $ROOM_SIZE, $IDLE idle"
"$BIN/loadtest" compare "$OUT/chat-switchboard.json" "$OUT/chat-prosody.json" | tee "$OUT/chat-vs-prosody.txt"
echo "== chat: Switchboard (a) vs ejabberd (b)"
"$BIN/loadtest" compare "$OUT/chat-switchboard.json" "$OUT/chat-ejabberd.json" | tee "$OUT/chat-vs-ejabberd.txt"
echo "== api: Switchboard"
"$BIN/loadtest" compare "$OUT/api-switchboard.json" "$OUT/api-switchboard.json" | cut -c1-48 | tee "$OUT/api.txt"
echo "reports: $OUT"
