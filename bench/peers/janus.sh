#!/usr/bin/env bash
# Debian's Janus (videoroom plugin, WebSocket transport) on loopback for side-by-side
# conference runs: never part of Switchboard.
#
#   bench/peers/janus.sh start DIR WS_PORT CORE [RTP_RANGE]   # installs if missing, starts pinned to
#                                                            # CORE, prints "PID WS_PORT RTP_RANGE NETNS"
#   bench/peers/janus.sh stop DIR
#
# Only the videoroom plugin and the websockets transport load. The videoroom uses string
# ids (room and participant ids are strings, as QuickBlox's dialog ids are) and has no
# pre-configured rooms: `loadtest conference` sends `create` for each room when it has no
# grant (`--create-rooms`). RTP ports come from RTP_RANGE (default 20000-20999: Switchboard
# uses 8080/8443/10000+/3478/5222), the WebSocket listens on 127.0.0.1:WS_PORT.
#
# Janus never gathers loopback candidates (it skips IFF_LOOPBACK interfaces and libnice
# then falls back to every other interface) and binds its media sockets to their device,
# so 127.0.0.0/8 cannot carry its media. It therefore runs in a network namespace of its
# own ($NETNS, default sbjanus) holding only lo and a veth pair: Janus gathers on sbj0
# (198.18.0.1, RFC 2544's benchmarking range) and the load generator, run in the same
# namespace, binds its media sockets to sbj1 (198.18.0.2). Nothing in the namespace
# reaches the host's network. Run the load like this:
#
#   ip netns exec sbjanus taskset -c 1 loadtest conference \
#     --target ws://127.0.0.1:WS_PORT/janus --media-ip 198.18.0.2 --server-pid PID ...
set -euo pipefail

NETNS=${NETNS:-sbjanus}

cmd=$1 dir=$2
case "$cmd" in
start)
  port=$3 core=$4 range=${5:-20000-20999}
  if ! command -v janus >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q janus >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q janus >/dev/null; }
  fi
  # The Debian package enables a systemd unit with the default config (port 8188); a
  # container without systemd never starts it, and this run does not depend on it.
  lib=$(dirname "$(dpkg -L janus | grep -m1 '/janus/plugins/libjanus_videoroom.so$')")
  lib=${lib%/plugins}
  if [[ ! -e "$lib/transports/libjanus_websockets.so" ]]; then
    echo "janus has no websockets transport at $lib/transports" >&2
    exit 1
  fi
  mkdir -p "$dir"
  # The namespace: lo, and sbj0 (Janus, 198.18.0.1) paired with sbj1 (clients, 198.18.0.2).
  ip netns del "$NETNS" 2>/dev/null || true
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link add sbj0 type veth peer name sbj1
  ip -n "$NETNS" addr add 198.18.0.1/24 dev sbj0
  ip -n "$NETNS" addr add 198.18.0.2/24 dev sbj1
  ip -n "$NETNS" link set sbj0 up
  ip -n "$NETNS" link set sbj1 up
  # Both ends are this namespace's own addresses: accept them arriving on the other end.
  for i in all sbj0 sbj1; do
    ip netns exec "$NETNS" sysctl -qw "net.ipv4.conf.$i.accept_local=1" "net.ipv4.conf.$i.rp_filter=0"
  done
  # so_list DIR [KEEP]: the libjanus_*.so names in DIR but KEEP, comma-separated.
  so_list() {
    local f out=()
    for f in "$1"/libjanus_*.so; do
      if [[ -e "$f" && "${f##*/}" != "${2:-}" ]]; then out+=("${f##*/}"); fi
    done
    (IFS=,; echo "${out[*]}")
  }
  disabled_loggers=$(so_list "$lib/loggers")
  # Every plugin and transport but the two this run needs stays unloaded.
  disabled_plugins=$(so_list "$lib/plugins" libjanus_videoroom.so)
  disabled_transports=$(so_list "$lib/transports" libjanus_websockets.so)
  cat >"$dir/janus.jcfg" <<CFG
general: {
  configs_folder = "$dir"
  plugins_folder = "$lib/plugins"
  transports_folder = "$lib/transports"
  events_folder = "$lib/events"
  loggers_folder = "$lib/loggers"
  debug_level = 3
  session_timeout = 60
}
media: {
  rtp_port_range = "$range"
}
nat: {
  ice_enforce_list = "sbj0"
  nice_debug = false
}
plugins: {
  disable = "$disabled_plugins"
}
transports: {
  disable = "$disabled_transports"
}
loggers: {
  disable = "$disabled_loggers"
}
events: {
  broadcast = false
}
CFG
  cat >"$dir/janus.transport.websockets.jcfg" <<CFG
general: {
  json = "compact"
  ws = true
  ws_port = $port
  ws_interface = "lo"
  ws_ip = "127.0.0.1"
  wss = false
}
admin: {
  admin_ws = false
  admin_wss = false
}
CFG
  cat >"$dir/janus.plugin.videoroom.jcfg" <<CFG
general: {
  string_ids = true
  lock_rtp_forward = true
}
CFG
  ip netns exec "$NETNS" taskset -c "$core" janus --config "$dir/janus.jcfg" \
    --configs-folder "$dir" --disable-colors --pid-file "$dir/janus.pid" >"$dir/janus.log" 2>&1 &
  for _ in $(seq 100); do
    if [[ -s "$dir/janus.pid" ]] && ip netns exec "$NETNS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      echo "$(cat "$dir/janus.pid") $port $range $NETNS"
      exit 0
    fi
    sleep 0.2
  done
  echo "janus did not start; see $dir/janus.log" >&2
  exit 1
  ;;
stop)
  if [[ -s "$dir/janus.pid" ]]; then
    pid=$(cat "$dir/janus.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/janus.pid"
  fi
  ip netns del "$NETNS" 2>/dev/null || true
  ;;
*)
  echo "usage: $0 start DIR WS_PORT CORE [RTP_RANGE] | stop DIR" >&2
  exit 2
  ;;
esac
