#!/usr/bin/env bash
# TURN side by side on loopback: Switchboard's relay vs Debian's coturn `turnserver`, same
# load from coturn's own turnutils_uclient (UDP, channels, `-c`: no RTCP allocations, which
# use RESERVATION-TOKEN), each server pinned to core 0, client and echo peer on core 1.
# Relayed packets = what the client sent plus what came back through the relay; server CPU
# from /proc/PID/stat before and after.
#
#   bash bench/turn.sh           # Env: CLIENTS (uclient -m, 20), MSGS (-n, 2000), SIZE (-l, 200)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLIENTS=${CLIENTS:-20}
MSGS=${MSGS:-2000}
SIZE=${SIZE:-200}
SECRET=bench-secret
SB_PORT=13478
COTURN_PORT=13479
PEER_PORT=13480
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SB_BIN=${SB_BIN:-$TARGET_DIR/release/switchboard}
[[ -x "$SB_BIN" ]] || cargo build --release -q -p switchboard
command -v turnserver >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q coturn >/dev/null
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-turn-bench.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# CPU seconds (utime + stime, USER_HZ 100) of a process.
cpu_s() { awk '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / 100 }' "/proc/$1/stat"; }

taskset -c 1 turnutils_peer -L 127.0.0.1 -p "$PEER_PORT" >/dev/null 2>&1 &
PIDS+=($!)

# run NAME PID PORT: one uclient run against the server at PORT, printing a result line.
run() {
  local name=$1 pid=$2 port=$3 before after out sent recv lost
  sleep 1
  before=$(cpu_s "$pid")
  out=$(taskset -c 1 turnutils_uclient -c -e 127.0.0.1 -r "$PEER_PORT" -u bench -W "$SECRET" \
    -m "$CLIENTS" -n "$MSGS" -l "$SIZE" -z 0 -p "$port" 127.0.0.1 2>&1 || true)
  after=$(cpu_s "$pid")
  sent=$(grep -o 'tot_send_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2 || true)
  recv=$(grep -o 'tot_recv_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2 || true)
  lost=$(grep -o 'Total lost packets [0-9]*' <<<"$out" | tail -1 | grep -o '[0-9]*$' || true)
  [[ -n "$sent" ]] || echo "$name: uclient failed: $(tail -3 <<<"$out")" >&2
  awk -v n="$name" -v s="${sent:-0}" -v r="${recv:-0}" -v l="${lost:-?}" -v c0="$before" -v c1="$after" 'BEGIN {
    cpu = c1 - c0; relayed = s + r;
    printf "%-12s sent %d, received %d, lost %s, relayed %d, server CPU %.2f s, %.0f relayed packets per CPU s, %.2f us CPU per packet\n",
      n, s, r, l, relayed, cpu, (cpu > 0 ? relayed / cpu : 0), (relayed > 0 ? cpu * 1e6 / relayed : 0) }'
}

mkdir -p "$WORK/sb"
taskset -c 0 env RUST_LOG=warn "$SB_BIN" serve --data-dir "$WORK/sb" --roles turn \
  --turn-addr "127.0.0.1:$SB_PORT" --turn-secret "$SECRET" --turn-allow-peers 127.0.0.1/32 \
  --turn-max-bandwidth 0 --turn-workers 1 --turn-user-quota 1000 >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
SB_PID=$!
PIDS+=("$SB_PID")
for _ in $(seq 300); do grep -q '^Switchboard ready' "$WORK/sb/banner.txt" && break; sleep 0.1; done
run switchboard "$SB_PID" "$SB_PORT"
kill "$SB_PID"

taskset -c 0 turnserver -n --no-cli --no-tls --no-dtls --listening-ip 127.0.0.1 \
  --listening-port "$COTURN_PORT" --relay-ip 127.0.0.1 --use-auth-secret \
  --static-auth-secret "$SECRET" --realm switchboard --allow-loopback-peers \
  --no-software-attribute --log-file "$WORK/coturn.log" --simple-log >/dev/null 2>&1 &
CO_PID=$!
PIDS+=("$CO_PID")
run "coturn $(dpkg-query -W -f='${Version}' coturn)" "$CO_PID" "$COTURN_PORT"
