#!/usr/bin/env bash
# Debian's ejabberd on loopback for side-by-side runs: never part of Switchboard.
#
#   bench/peers/ejabberd.sh start DIR PORT USERS CORE  # installs if missing, starts pinned to CORE,
#                                                     # writes DIR/users.txt, prints the beam PID
#   bench/peers/ejabberd.sh stop DIR
#
# Logins are anonymous over SASL PLAIN (`anonymous_protocol: login_anon`): any name and
# password log in, so no accounts are registered (ejabberdctl starts a VM per user). c2s
# without TLS and without a shaper: loopback benchmarking only.
set -euo pipefail

cmd=$1 dir=$2
NODE=ejabberd-bench@localhost
ctl() {
  ejabberdctl --config-dir "$dir" --config "$dir/ejabberd.yml" --ctl-config "$dir/ejabberdctl.cfg" \
    --spool "$dir/spool" --logs "$dir/logs" --node "$NODE" "$@"
}
case "$cmd" in
start)
  port=$3 users=$4 core=$5
  if ! command -v ejabberdctl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q ejabberd >/dev/null
  fi
  mkdir -p "$dir/spool" "$dir/logs"
  : >"$dir/users.txt"
  for ((i = 0; i < users; i++)); do echo "lt$i@localhost pw$i" >>"$dir/users.txt"; done
  # TCP_NODELAY on accepted client sockets (inherited from the listener), as Switchboard sets
# it: with Nagle on, a stanza written while the previous one is unacknowledged waits for
# the client's delayed ACK (~40 ms).
echo 'ERL_OPTIONS="-kernel inet_default_listen_options [{nodelay,true}]"' >"$dir/ejabberdctl.cfg"
  cp /etc/ejabberd/inetrc "$dir/inetrc" 2>/dev/null || true
  cat >"$dir/ejabberd.yml" <<CFG
hosts: [localhost]
loglevel: warning
certfiles: []
listen:
  - port: $port
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    starttls_required: false
auth_method: [anonymous]
anonymous_protocol: login_anon
allow_multiple_connections: true
access_rules:
  local: {allow: all}
  c2s: {allow: all}
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_muc:
    host: conference.localhost
    access: all
    access_create: all
    history_size: 0
    default_room_options: {persistent: false}
CFG
  chown -R ejabberd "$dir"
  taskset -c "$core" bash -c "$(declare -f ctl); dir='$dir' NODE='$NODE' ctl start"
  for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      pgrep -f -- "-sname $NODE|-name $NODE|$NODE" -n -x beam.smp 2>/dev/null ||
        pgrep -n -f "beam.smp.*$NODE"
      exit 0
    fi
    sleep 0.2
  done
  echo "ejabberd did not start; see $dir/logs" >&2
  exit 1
  ;;
stop)
  ctl stop >/dev/null 2>&1 || true
  for _ in $(seq 50); do pgrep -f "beam.smp.*$NODE" >/dev/null || break; sleep 0.2; done
  ;;
*)
  echo "usage: $0 start DIR PORT USERS CORE | stop DIR" >&2
  exit 2
  ;;
esac
