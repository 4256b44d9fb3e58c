#!/usr/bin/env bash
# Debian's coturn (`turnserver`) on loopback for side-by-side TURN runs: never part of
# Switchboard, and never started by the tests (they use only coturn's turnutils_* clients).
#
#   bench/peers/coturn.sh start DIR PORT CORE [RELAY_RANGE]   # installs if missing, starts pinned
#                                                            # to CORE, prints the PID
#   bench/peers/coturn.sh stop DIR
#   bench/peers/coturn.sh install                              # only installs (the turnutils_* clients)
#
# Configured as bench/turn.sh and bench/turn-loadtest.sh configure Switchboard: UDP and TCP
# on 127.0.0.1:PORT (no TLS/DTLS, no CLI), REST-API credentials with the shared secret
# $TURN_SECRET (default bench-secret) in realm $TURN_REALM (default switchboard), relayed
# addresses on 127.0.0.1 in RELAY_RANGE (default 49152-65535, Switchboard's
# --turn-relay-ports default), loopback peers allowed. No quotas, no bandwidth cap: coturn
# has neither by default. Its log is DIR/coturn.log, its pid file DIR/turnserver.pid.
set -euo pipefail

install_coturn() {
  if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q coturn >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q coturn >/dev/null; }
  fi
}

cmd=${1:-} dir=${2:-}
case "$cmd" in
install)
  install_coturn
  ;;
start)
  port=$3 core=$4 range=${5:-49152-65535}
  secret=${TURN_SECRET:-bench-secret}
  realm=${TURN_REALM:-switchboard}
  install_coturn
  # The Debian package ships a disabled service (/etc/default/coturn); nothing here uses it,
  # and `-n` keeps /etc/turnserver.conf out of this run.
  mkdir -p "$dir"
  rm -f "$dir/turnserver.pid"
  taskset -c "$core" turnserver -n --no-cli --no-tls --no-dtls --listening-ip 127.0.0.1 \
    --listening-port "$port" --relay-ip 127.0.0.1 --min-port "${range%-*}" --max-port "${range#*-}" \
    --use-auth-secret --static-auth-secret "$secret" --realm "$realm" --allow-loopback-peers \
    --no-software-attribute --pidfile "$dir/turnserver.pid" --log-file "$dir/coturn.log" \
    --simple-log >"$dir/stdout.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/turnserver.pid.launch"
  # coturn prints no ready line; its TCP and UDP listeners show up in ss once bound.
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if ss -Hltn "sport = :$port" | grep -q . && ss -Hlun "sport = :$port" | grep -q .; then
      echo "$pid"
      exit 0
    fi
    sleep 0.1
  done
  echo "coturn did not start; see $dir/coturn.log $dir/stdout.log" >&2
  exit 1
  ;;
stop)
  # The launch pid is the server itself (turnserver without -o does not fork); coturn's own
  # pid file is the fallback.
  for f in "$dir/turnserver.pid.launch" "$dir/turnserver.pid"; do
    [[ -s "$f" ]] || continue
    pid=$(cat "$f")
    rm -f "$f"
    # Only a turnserver: a stale file must not name some other process that reused the pid.
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == turnserver ]] || continue
    kill "$pid" 2>/dev/null || true
    # coturn may linger closing thousands of sockets; it must not share a core with the next run.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  ;;
*)
  echo "usage: $0 start DIR PORT CORE [RELAY_RANGE] | stop DIR | install" >&2
  exit 2
  ;;
esac
