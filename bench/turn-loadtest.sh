#!/usr/bin/env bash
# TURN side by side on loopback with `loadtest turn`: Switchboard's relay, then Debian's coturn
# `turnserver`, same load, same REST secret, realm and loopback peer allowance; each server pinned
# to core 0, the load generator (clients and its own echo peer) on core 1. Runs each MODE against
# both servers, prints `loadtest compare` per mode and leaves the JSON/HTML reports in OUT.
# Allocations come from 4096 loopback source IPs, as from distinct clients (Switchboard limits
# unauthenticated requests per IP).
# coturn comes from bench/peers/coturn.sh. (bench/turn.sh is the same relay comparison under
# coturn's own turnutils_uclient.)
#
#   bash bench/turn-loadtest.sh            # prints the tables, leaves JSON/HTML reports in OUT
#   bash bench/turn-loadtest.sh --readme   # also rewrites the TURN allocations block of README.md's
#                                          # Performance section (README_FILE: another file)
#
# Env: MODES (space-separated, default "relay-udp relay-tcp allocate-udp"), CLIENTS (relay
#      clients, 50), RATE (packets/s sent in total, 20000; echoed back, so relayed ≈ 2×),
#      SIZE (payload bytes, 200), ALLOC_CLIENTS (16), ALLOC_RATE (allocations/s, 0 = unpaced),
#      DURATION (15s), RAMP_UP (2s), RELAY_PORTS (49152-65535, both servers),
#      OUT (default bench/results/turn-DATE), BIN (prebuilt binaries' directory).
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
RAMP_UP=${RAMP_UP:-2s}
RELAY_PORTS=${RELAY_PORTS:-49152-65535}
README_FILE=${README_FILE:-$ROOT/README.md}
README=0
[[ "${1:-}" == "--readme" ]] && README=1
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
bash "$ROOT/bench/peers/coturn.sh" install
COTURN_VERSION=$(dpkg-query -W -f='${Version}' coturn | sed 's/-.*//')
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-turn-loadtest.XXXXXX")"
SERVER_PID=""
COTURN_UP=0
stop_server() {
  if [[ $COTURN_UP == 1 ]]; then
    bash "$ROOT/bench/peers/coturn.sh" stop "$WORK/coturn"
    COTURN_UP=0
  elif [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
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
    --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 --turn-addr "127.0.0.1:$SB_PORT" --turn-secret "$SECRET" --turn-allow-peers 127.0.0.1/32 \
    --turn-relay-ports "$RELAY_PORTS" --turn-max-bandwidth 0 --turn-workers 1 --turn-user-quota 1000 --turn-total-quota 100000 \
    >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
  SERVER_PID=$!
  for _ in $(seq 300); do grep -q '^Switchboard ready' "$WORK/sb/banner.txt" && return; sleep 0.1; done
  echo "switchboard did not start: $(tail -3 "$WORK/sb/stderr.log")" >&2
  exit 1
}

start_coturn() {
  SERVER_PID=$(bash "$ROOT/bench/peers/coturn.sh" start "$WORK/coturn" "$COTURN_PORT" 0 "$RELAY_PORTS")
  COTURN_UP=1
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
    --duration "$DURATION" --ramp-up "$RAMP_UP" --quiet --server-pid "$SERVER_PID" \
    --out "$OUT/$mode-$name.json" --html "$OUT/$mode-$name.html" || true
}

LOAD=$(cut -d' ' -f1 /proc/loadavg)
echo "TURN with loadtest turn: modes $MODES, $DURATION per run; load average $LOAD"
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
echo "coturn $COTURN_VERSION, b = coturn, a = Switchboard"
for mode in $MODES; do
  if [[ -f "$OUT/$mode-switchboard.json" && -f "$OUT/$mode-coturn.json" ]]; then
    echo
    echo "## $mode"
    "$BIN/loadtest" compare "$OUT/$mode-switchboard.json" "$OUT/$mode-coturn.json"
  fi
done
echo
echo "reports: $OUT"

python3 "$ROOT/bench/tables.py" turn-loadtest "$OUT" "$MODES" "$COTURN_VERSION" >"$OUT/turn-table.md"
echo
cat "$OUT/turn-table.md"

if [[ $README == 1 ]]; then
  {
    python3 "$ROOT/bench/tables.py" --header bench/turn-loadtest.sh "TURN allocations and relay under \`loadtest turn\`" "$LOAD" \
      "MODES=\"$MODES\" CLIENTS=$CLIENTS RATE=$RATE SIZE=$SIZE ALLOC_CLIENTS=$ALLOC_CLIENTS ALLOC_RATE=$ALLOC_RATE DURATION=$DURATION RAMP_UP=$RAMP_UP" \
      "each server on core 0 (coturn from \`bench/peers/coturn.sh\`), \`loadtest turn\` on core 1 with REST credentials; relay: CLIENTS allocations each bound to a channel, RATE packets/s of SIZE bytes sent in total and echoed by the tester's peer (relayed ≈ 2 × RATE); allocate: ALLOC_CLIENTS clients from 4,096 loopback source IPs allocating and releasing in a loop (ALLOC_RATE 0: unpaced); rates over the whole run, ramp-up included"
    cat "$OUT/turn-table.md"
  } >"$OUT/turn-block.md"
  python3 "$ROOT/bench/readme_block.py" "$README_FILE" turn-loadtest-bench "$OUT/turn-block.md"
  echo "$README_FILE: TURN (loadtest turn) block rewritten"
fi
