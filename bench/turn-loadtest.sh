#!/usr/bin/env bash
# TURN side by side on loopback with `loadtest turn`: Switchboard's relay, then Debian's coturn
# `turnserver`, same load, same REST secret, realm and loopback peer allowance; each server pinned
# to core 0, the load generator (clients and its own echo peer) on core 1. Runs each MODE against
# both servers, prints `loadtest compare` per mode and leaves the JSON/HTML reports in OUT.
# Allocations come from 4096 loopback source IPs, as from distinct clients (Switchboard limits
# unauthenticated requests per IP).
# (bench/turn.sh is the same comparison under coturn's own turnutils_uclient.)
#
#   bash bench/turn-loadtest.sh
#
# Env: MODES (space-separated, default "relay-udp relay-tcp allocate-udp"), CLIENTS (relay
#      clients, 50), RATE (packets/s sent in total, 20000; echoed back, so relayed ≈ 2×),
#      SIZE (payload bytes, 200), ALLOC_CLIENTS (16), ALLOC_RATE (allocations/s, 0 = unpaced),
#      DURATION (15s), OUT (default bench/results/turn-DATE), BIN (prebuilt binaries' directory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODES=${MODES:-relay-udp relay-tcp allocate-udp}
CLIENTS=${CLIENTS:-50}
RATE=${RATE:-20000}
SIZE=${SIZE:-200}
ALLOC_CLIENTS=${ALLOC_CLIENTS:-16}
ALLOC_RATE=${ALLOC_RATE:-0}
DURATION=${DURATION:-15s}
OUT=${OUT:-$ROOT/bench/results/turn-$(date -u +%Y%m%dT%H%M%SZ)}
SECRET=bench-secret
# Apart from bench/turn.sh's 13478-13480, so both can run on one machine.
SB_PORT=13578
COTURN_PORT=13579

# BIN: a directory holding release `switchboard` and `loadtest` already built (skips the build).
if [[ -z "${BIN:-}" ]]; then
  cargo build --release -q -p switchboard -p loadtest
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
fi
command -v turnserver >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q coturn >/dev/null
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-turn-loadtest.XXXXXX")"
SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    # coturn may linger closing thousands of sockets; it must not share core 0 with the next run.
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

start_switchboard() {
  rm -rf "$WORK/sb" && mkdir -p "$WORK/sb"
  # Unlimited per-allocation bandwidth and quotas above the load: coturn has neither by default.
  taskset -c 0 env RUST_LOG=warn "$BIN/switchboard" serve --data-dir "$WORK/sb" --roles turn \
    --turn-addr "127.0.0.1:$SB_PORT" --turn-secret "$SECRET" --turn-allow-peers 127.0.0.1/32 \
    --turn-max-bandwidth 0 --turn-workers 1 --turn-user-quota 1000 --turn-total-quota 100000 \
    >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
  SERVER_PID=$!
  for _ in $(seq 300); do grep -q '^Switchboard ready' "$WORK/sb/banner.txt" && return; sleep 0.1; done
  echo "switchboard did not start: $(tail -3 "$WORK/sb/stderr.log")" >&2
  exit 1
}

start_coturn() {
  taskset -c 0 turnserver -n --no-cli --no-tls --no-dtls --listening-ip 127.0.0.1 \
    --listening-port "$COTURN_PORT" --relay-ip 127.0.0.1 --use-auth-secret \
    --static-auth-secret "$SECRET" --realm switchboard --allow-loopback-peers \
    --no-software-attribute --log-file "$WORK/coturn.log" --simple-log >/dev/null 2>&1 &
  SERVER_PID=$!
  # coturn prints no ready line; its TCP and UDP listeners show up in ss once bound.
  for _ in $(seq 100); do
    if ss -Hltn "sport = :$COTURN_PORT" | grep -q . && ss -Hlun "sport = :$COTURN_PORT" | grep -q .; then return; fi
    sleep 0.1
  done
  echo "coturn did not start: $(tail -3 "$WORK/coturn.log" 2>/dev/null)" >&2
  exit 1
}

# load NAME PORT MODE: one `loadtest turn` run against the server in SERVER_PID.
load() {
  local name=$1 port=$2 mode=$3 args
  case "$mode" in
    relay-udp) args=(--mode relay --transport udp --clients "$CLIENTS" --rate "$RATE" --size "$SIZE") ;;
    relay-tcp) args=(--mode relay --transport tcp --clients "$CLIENTS" --rate "$RATE" --size "$SIZE") ;;
    allocate-udp) args=(--mode allocate --transport udp --clients "$ALLOC_CLIENTS" --rate "$ALLOC_RATE" --source-ips 4096) ;;
    allocate-tcp) args=(--mode allocate --transport tcp --clients "$ALLOC_CLIENTS" --rate "$ALLOC_RATE" --source-ips 4096) ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "== $name, $mode"
  taskset -c 1 "$BIN/loadtest" turn --target "127.0.0.1:$port" --secret "$SECRET" "${args[@]}" \
    --duration "$DURATION" --ramp-up 2s --quiet --server-pid "$SERVER_PID" \
    --out "$OUT/$mode-$name.json" --html "$OUT/$mode-$name.html" || true
}

for mode in $MODES; do
  start_switchboard
  load switchboard "$SB_PORT" "$mode"
  stop_server
  start_coturn
  load coturn "$COTURN_PORT" "$mode"
  stop_server
done

echo
echo "TURN, loadtest turn, $(date -u +%Y-%m-%d), $(nproc) cores, server on core 0, load on core 1;"
echo "coturn $(dpkg-query -W -f='${Version}' coturn), b = coturn, a = Switchboard"
for mode in $MODES; do
  if [[ -f "$OUT/$mode-switchboard.json" && -f "$OUT/$mode-coturn.json" ]]; then
    echo
    echo "## $mode"
    "$BIN/loadtest" compare "$OUT/$mode-switchboard.json" "$OUT/$mode-coturn.json"
  fi
done
echo
echo "reports: $OUT"
