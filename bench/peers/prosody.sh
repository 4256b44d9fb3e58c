#!/usr/bin/env bash
# Debian's Prosody on loopback for side-by-side runs: never part of Switchboard.
#
#   bench/peers/prosody.sh start DIR PORT USERS CORE   # installs if missing, starts pinned to CORE,
#                                                     # writes DIR/users.txt (`jid password` lines), prints the PID
#   bench/peers/prosody.sh stop DIR
#
# Accounts are written straight into Prosody's internal_plain store (prosodyctl register
# spawns Lua once per user). c2s without TLS and PLAIN allowed: loopback benchmarking only.
set -euo pipefail

cmd=$1 dir=$2
case "$cmd" in
start)
  port=$3 users=$4 core=$5
  if ! command -v prosody >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prosody >/dev/null
  fi
  mkdir -p "$dir/data/localhost/accounts"
  : >"$dir/users.txt"
  for ((i = 0; i < users; i++)); do
    printf 'return {\n\t["password"] = "pw%d";\n};\n' "$i" >"$dir/data/localhost/accounts/lt$i.dat"
    echo "lt$i@localhost pw$i" >>"$dir/users.txt"
  done
  cat >"$dir/prosody.cfg.lua" <<CFG
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
log = { warn = "$dir/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "posix" }
modules_disabled = { "s2s" }
-- TCP_NODELAY on client streams, as Switchboard sets it: with Nagle on, a stanza written
-- while the previous one is unacknowledged waits for the client's delayed ACK (~40 ms).
network_settings = { nagle = false }
VirtualHost "localhost"
Component "conference.localhost" "muc"
  muc_room_locking = false
  max_history_messages = 0
CFG
  chown -R prosody "$dir"
  runuser -u prosody -- taskset -c "$core" prosody --config "$dir/prosody.cfg.lua" -F >"$dir/stdout.log" 2>&1 &
  for _ in $(seq 100); do
    if [[ -s "$dir/prosody.pid" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      cat "$dir/prosody.pid"
      exit 0
    fi
    sleep 0.2
  done
  echo "prosody did not start; see $dir/prosody.log $dir/stdout.log" >&2
  exit 1
  ;;
stop)
  if [[ -s "$dir/prosody.pid" ]]; then
    pid=$(cat "$dir/prosody.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    # Closing many client streams can outlast the wait: make sure it is gone.
    kill -9 "$pid" 2>/dev/null || true
  fi
  ;;
*)
  echo "usage: $0 start DIR PORT USERS CORE | stop DIR" >&2
  exit 2
  ;;
esac
