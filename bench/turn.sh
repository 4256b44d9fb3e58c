#!/usr/bin/env bash
# TURN side by side on loopback: Switchboard's relay vs Debian's coturn `turnserver`
# (bench/peers/coturn.sh: same REST secret, realm, relay port range and loopback peer
# allowance), same load from coturn's own turnutils_uclient with its defaults (UDP, channels,
# RTP/RTCP allocation pairs with EVEN-PORT and RESERVATION-TOKEN), each server pinned to
# core 0, client and echo peer on core 1, ROUNDS alternating runs of each.
#
# Relayed packets = 2 x packets the client got back (each echoed packet crossed the relay
# twice; a packet lost on the way is not counted, so loss never flatters a server). Server
# CPU is utime + stime from /proc/PID/stat around each uclient run (allocations included).
#
#   bash bench/turn.sh            # Env: PROCS (uclient processes at once, 2),
#                                 #      CLIENTS (each one's -m, 20), MSGS (-n, 5000), SIZE (-l, 200),
#                                 #      PACE (-z, ms between a session's packets, 0 = unpaced),
#                                 #      ROUNDS (3), RELAY_PORTS (49152-65535, both servers),
#                                 #      SB_BIN (target/release/switchboard)
#   bash bench/turn.sh --readme   # also rewrites the TURN block of README.md's Performance
#                                 # section (README_FILE: another file with the same markers)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROCS=${PROCS:-2}
[[ "$PROCS" =~ ^[1-9][0-9]*$ ]] || { echo "PROCS must be a positive number (got $PROCS)" >&2; exit 2; }
CLIENTS=${CLIENTS:-20}
MSGS=${MSGS:-5000}
SIZE=${SIZE:-200}
PACE=${PACE:-0}
ROUNDS=${ROUNDS:-3}
RELAY_PORTS=${RELAY_PORTS:-49152-65535}
README_FILE=${README_FILE:-$ROOT/README.md}
README=0
[[ "${1:-}" == "--readme" ]] && README=1
SECRET=bench-secret
SB_PORT=13478
COTURN_PORT=13479
PEER_PORT=13480
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SB_BIN=${SB_BIN:-$TARGET_DIR/release/switchboard}
[[ -x "$SB_BIN" ]] || cargo build --release -q -p switchboard
# coturn's package also brings the turnutils_* clients this script drives.
bash "$ROOT/bench/peers/coturn.sh" install
COTURN_VERSION=$(dpkg-query -W -f='${Version}' coturn | sed 's/-.*//')
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-turn-bench.XXXXXX")"
PIDS=()
UCLIENTS=()
COTURN_UP=0
cleanup() {
  local p
  for p in "${PIDS[@]}" "${UCLIENTS[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$ROOT/bench/peers/coturn.sh" stop "$WORK/coturn" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# CPU ticks (utime + stime, USER_HZ 100) of a process.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

taskset -c 1 turnutils_peer -L 127.0.0.1 -p "$PEER_PORT" >/dev/null 2>&1 &
PIDS+=($!)

start_switchboard() {
  rm -rf "$WORK/sb" && mkdir -p "$WORK/sb"
  # Port 0 for the HTTP(S) listeners (/metrics is always served): nothing to clash with.
  taskset -c 0 env RUST_LOG=warn "$SB_BIN" serve --data-dir "$WORK/sb" --roles turn \
    --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 --turn-addr "127.0.0.1:$SB_PORT" --turn-secret "$SECRET" --turn-allow-peers 127.0.0.1/32 \
    --turn-relay-ports "$RELAY_PORTS" --turn-max-bandwidth 0 --turn-workers 1 --turn-user-quota 1000 >"$WORK/sb/banner.txt" 2>"$WORK/sb/stderr.log" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 300); do grep -qs '^Switchboard ready' "$WORK/sb/banner.txt" && return; sleep 0.1; done
  echo "switchboard did not start: $(tail -3 "$WORK/sb/stderr.log")" >&2
  exit 1
}

start_coturn() {
  SERVER_PID=$(bash "$ROOT/bench/peers/coturn.sh" start "$WORK/coturn" "$COTURN_PORT" 0 "$RELAY_PORTS")
  COTURN_UP=1
}

stop_server() {
  if [[ $COTURN_UP == 1 ]]; then
    bash "$ROOT/bench/peers/coturn.sh" stop "$WORK/coturn"
    COTURN_UP=0
  else
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}

# run KEY LABEL PORT: one load (PROCS uclient processes at once) against the server SERVER_PID
# at PORT; appends "key received sent ticks" to $WORK/results. uclient picks channel numbers at
# random and coturn refuses a rare collision (400), so a failed load is retried (twice at most).
run() {
  local key=$1 name=$2 port=$3 before after sent recv try p failed
  for try in 1 2 3; do
    before=$(cpu_ticks "$SERVER_PID")
    UCLIENTS=()
    for p in $(seq "$PROCS"); do
      taskset -c 1 turnutils_uclient -e 127.0.0.1 -r "$PEER_PORT" -u bench -W "$SECRET" \
        -m "$CLIENTS" -n "$MSGS" -l "$SIZE" -z "$PACE" -p "$port" 127.0.0.1 >"$WORK/uclient.$p" 2>&1 &
      UCLIENTS+=($!)
    done
    for p in "${UCLIENTS[@]}"; do wait "$p" || true; done
    UCLIENTS=()
    after=$(cpu_ticks "$SERVER_PID")
    sent=0 recv=0 failed=0
    for p in $(seq "$PROCS"); do
      local s r
      s=$(grep -o 'tot_send_msgs=[0-9]*' "$WORK/uclient.$p" | tail -1 | cut -d= -f2 || true)
      r=$(grep -o 'tot_recv_msgs=[0-9]*' "$WORK/uclient.$p" | tail -1 | cut -d= -f2 || true)
      if [[ -z "$s" || "$s" -eq 0 ]]; then failed=$p; break; fi
      sent=$((sent + s)) recv=$((recv + r))
    done
    if [[ $failed == 0 ]]; then
      echo "$key $recv $sent $((after - before))" >>"$WORK/results"
      awk -v n="$name" -v s="$sent" -v r="$recv" -v t="$((after - before))" 'BEGIN {
        printf "%-12s sent %d, echoed %d (lost %.1f %%), server CPU %.2f s, %.2f us per relayed packet\n",
          n, s, r, (s - r) * 100 / s, t / 100, (r > 0 ? t * 1e4 / (2 * r) : 0) }'
      return
    fi
    echo "$name: uclient $failed failed (try $try): $(grep -i error "$WORK/uclient.$failed" | tail -1)" >&2
  done
  exit 1
}

LOAD=$(cut -d' ' -f1 /proc/loadavg)
echo "TURN: $PROCS uclient processes x $CLIENTS sessions x $MSGS packets of $SIZE bytes (-z $PACE), $ROUNDS rounds; load average $LOAD"
for _ in $(seq "$ROUNDS"); do
  start_switchboard
  run switchboard switchboard "$SB_PORT"
  stop_server
  start_coturn
  run coturn "coturn $COTURN_VERSION" "$COTURN_PORT"
  stop_server
done

# Totals over the rounds: relayed packets (2 x echoed) per server CPU second.
read -r SB_RELAYED SB_TICKS SB_LOST CO_RELAYED CO_TICKS CO_LOST < <(awk '
  $1 == "switchboard" { sr += 2 * $2; sl += $3 - $2; st += $4 }
  $1 == "coturn"      { cr += 2 * $2; cl += $3 - $2; ct += $4 }
  END { print sr, st, sl, cr, ct, cl }' "$WORK/results")
summary=$(awk -v sr="$SB_RELAYED" -v st="$SB_TICKS" -v sl="$SB_LOST" -v cr="$CO_RELAYED" \
  -v ct="$CO_TICKS" -v cl="$CO_LOST" -v v="$COTURN_VERSION" 'BEGIN {
  sp = sr * 100 / st; cp = cr * 100 / ct
  printf "| | Switchboard | coturn %s |\n|---|---|---|\n", v
  printf "| relayed packets (lost on the way) | %d (%d) | %d (%d) |\n", sr, sl, cr, cl
  printf "| server CPU | %.2f s | %.2f s |\n", st / 100, ct / 100
  printf "| CPU per relayed packet | %.2f µs | %.2f µs |\n", st * 1e4 / sr, ct * 1e4 / cr
  printf "| relayed packets per server CPU s | %.0f k (%.2f×) | %.0f k |\n", sp / 1000, sp / cp, cp / 1000
  printf "\nTarget (issue 10): ≥ 2× coturn'"'"'s relayed packets per CPU-second — %s (%.2f×).\n",
    (sp >= 2 * cp ? "met" : "**not met**"), sp / cp }')
echo
echo "$summary"

if [[ $README == 1 ]]; then
  block="$WORK/turn-block.md"
  {
    echo "<!-- bench/turn.sh --readme: generated block, do not edit by hand -->"
    echo "**TURN relay** ($(date -u +%Y-%m-%d), load average $LOAD at the start; \`bash bench/turn.sh --readme\`,"
    echo "PROCS=$PROCS CLIENTS=$CLIENTS MSGS=$MSGS SIZE=$SIZE PACE=$PACE ROUNDS=$ROUNDS: UDP, channels, PROCS of coturn's \`turnutils_uclient\` at once (CLIENTS sessions each)"
    echo "with its defaults (RTP/RTCP pairs with EVEN-PORT and RESERVATION-TOKEN), \`-z $PACE\`, echoed by"
    echo "\`turnutils_peer\`; coturn from \`bench/peers/coturn.sh\`; relayed = 2 × echoed, totals over the rounds):"
    echo
    echo "$summary"
  } >"$block"
  # Replace only the lines between the markers (others edit the README too).
  python3 "$ROOT/bench/readme_block.py" "$README_FILE" turn-bench "$block"
  echo "$README_FILE: TURN block rewritten"
fi
